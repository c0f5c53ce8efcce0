"""`export mrr`: the customer-by-month table for BI tools, with what it reflects.

The rows come from `projections.monthly` (the movement rule per customer); this module
turns them into text a spreadsheet or a Parquet reader takes as it is: MRR exact (decimal
text, or a reduced fraction where the decimal repeats) and rounded half-even to cents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import lru_cache
from typing import Any

from projections.monthly import MonthRows, customer_months
from projections.periods import parse_month, period_of
from projections.rates import MissingRate
from services.errors import LedgerError
from services.ledger import open_ledger, reporting_currency
from services.metrics import engine_for
from services.present import decimal_text, exact_decimal

BASE_COLUMNS = ("month", "customer_id", "mrr", "mrr_exact", "previous_mrr",
                "previous_mrr_exact", "mrr_change", "mrr_change_exact", "fx", "fx_exact",
                "movement", "first_paid_month", "cohort")
MONEY = ("mrr", "previous_mrr", "mrr_change", "fx")  # rounded to cents, beside their _exact


@dataclass(frozen=True)
class MRRExport:
    """The table: its columns, its manifest, and its rows a month at a time (columns of
    text; attribute columns are `attr_KEY`, empty where the key is not set)."""

    columns: list[str]
    manifest: dict[str, Any]
    months: Iterator[dict[str, list[str]]]


def export_mrr(url: str, first: date, last: date, cohort_grain: str = "month",
               known_at: str | None = None) -> MRRExport:
    with open_ledger(url) as app:
        index, reflects = engine_for(app, known_at)
        currency = reporting_currency(app)
    keys = sorted(index.attr_codes)
    columns = [*BASE_COLUMNS, *(f"attr_{k}" for k in keys)]
    manifest = {
        **reflects,
        "table": "mrr by customer and month (month-end snapshots)",
        "grain": "month", "start": first.isoformat()[:7], "end": last.isoformat()[:7],
        "cohort_grain": cohort_grain, "reporting_currency": currency,
        "columns": columns,
        "exact": "decimal text, or a reduced fraction p/q where the decimal repeats",
    }
    months = (_columns(rows, keys, cohort_grain)
              for rows in _priced(customer_months(index, first, last)))
    return MRRExport(columns, manifest, months)


def _priced(months: Iterator[MonthRows]) -> Iterator[MonthRows]:
    """The months as they are read (after the ledger is closed): a month needing an
    exchange rate the ledger does not hold ends the table with the one-line error."""
    try:
        yield from months
    except MissingRate as missing:
        raise LedgerError(str(missing)) from None


def _columns(rows: MonthRows, keys: list[str], cohort_grain: str) -> dict[str, list[str]]:
    n = len(rows.customers)
    out: dict[str, list[str]] = {"month": [rows.month] * n, "customer_id": rows.customers}
    scale = rows.denominator * 100  # 1/D cents -> currency units
    change = rows.mrr - rows.previous_mrr
    for name, units in (("mrr", rows.mrr), ("previous_mrr", rows.previous_mrr),
                        ("mrr_change", change), ("fx", rows.fx)):
        texts = [_texts(int(u), scale) for u in units.tolist()]
        out[name] = [t[0] for t in texts]
        out[f"{name}_exact"] = [t[1] for t in texts]
    out["movement"] = rows.category
    out["first_paid_month"] = rows.first_paid_month
    out["cohort"] = [_cohort(m, cohort_grain) for m in rows.first_paid_month]
    for key in keys:
        values = rows.attributes.get(key, [None] * n)
        out[f"attr_{key}"] = ["" if v is None else v for v in values]
    return out


@lru_cache(maxsize=1 << 16)  # a ledger's MRRs repeat: a handful of plans and prices
def _texts(units: int, scale: int) -> tuple[str, str]:
    value = Fraction(units, scale)
    return decimal_text(value, 2), exact_decimal(value)


@lru_cache(maxsize=1 << 12)
def _cohort(first_paid_month: str, grain: str) -> str:
    return period_of(parse_month(first_paid_month), grain).label if first_paid_month else ""
