"""The analyst's views: cohort triangles and the one-screen report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from fractions import Fraction
from typing import Any

from ledger.application import LedgerApplication
from ledger.currencies import minor_unit
from projections import kpis
from projections.cohorts import triangle
from projections.engine import MRRIndex
from projections.facts import by_customer_stream
from projections.fold import visible
from projections.movements import KINDS
from projections.periods import end_of, month_end, month_label, months, periods
from projections.split import split_expansion
from services.ledger import open_ledger, reporting_currency
from services.metrics import (
    engine,
    engine_for,
    head_position,
    period_movements,
    retention_fields,
    segment_exists,
)
from services.present import decimal_text, exact_text, money, optional_money, ratio


def cohorts_report(
    url: str,
    first: date,
    last: date,
    grain: str,
    metric: str,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        rows = triangle(e, periods(first, last, grain), metric, segment)
        segment_exists(e, segment)
    return {
        "grain": grain,
        "metric": metric,
        "segment": dict(segment or {}),
        "cohorts": [
            {
                "cohort": row.cohort,
                "customers": row.customers,
                **money("starting_mrr", row.starting_mrr, minor_unit(e.reporting)),
                "ages": [None if v is None else decimal_text(v, 6) for v in row.ages],
                "ages_exact": [None if v is None else exact_text(v) for v in row.ages],
            }
            for row in rows
        ],
        "reporting_currency": e.reporting,
        "manifest": reflects,
    }


# NRR bands (Bessemer Cloud Index / KeyBanc SaaS survey, 2024), highest first, by lower
# bound; a boundary belongs to the band above it, except 130%, which is "excellent".
BANDS = ((Fraction(13, 10), "best-in-class (> 130%)"), (Fraction(12, 10), "excellent (120-130%)"),
         (Fraction(11, 10), "good (110-120%)"), (Fraction(1), "acceptable (100-110%)"),
         (Fraction(0), "leaky bucket (< 100%)"))


def band(nrr: Fraction | None) -> str | None:
    if nrr is None:
        return None
    return next(name for bound, name in BANDS
                if nrr > bound or (nrr == bound and bound != BANDS[0][0]))


def summary_report(url: str, start: date, end: date,
                   known_at: str | None = None) -> dict[str, Any]:
    """MRR at both ends, NRR and GRR with their band, the monthly movements of the months
    after `start`'s up to `end`'s, logo churn, and warnings a reader must not miss."""
    with open_ledger(url) as app:
        e, reflects = engine_for(app, known_at)
        return summary_of(app, e, reflects, start, end)


def summary_of(app: LedgerApplication, e: MRRIndex, reflects: dict[str, Any], start: date,
               end: date) -> dict[str, Any]:
    """The summary from an engine (and the ledger it reflects, for the expansion split)."""
    m0, c0 = e.total(end_of(start))
    m1, c1 = e.total(end_of(end))
    r = e.nrr(end_of(start), end_of(end), None, None)
    moves = period_movements(e, start, end)
    # The split needs subscriptions, which the projection does not keep: the events of
    # the customers who expanded, as recorded by the answer's position (not a replay).
    upto = head_position(reflects)
    expanded = e.expanded(end_of(start), end_of(end))
    customers = [(c, visible(facts)) for c, facts in by_customer_stream(
        app.ledger_recorder.select_customer_events(expanded, upto))]
    from_quantity, from_price = split_expansion(customers, end_of(start), end_of(end),
                                                e.rates.worth(e.reporting))
    places = minor_unit(e.reporting)
    totals = {kind: sum((getattr(m, kind) for m in moves), Fraction(0)) for kind in KINDS}
    gained, lost = kpis.gained_and_lost(moves)
    logo_churn = kpis.logo_churn_rate(r)
    warnings = []
    if r.grr is not None and r.nrr is not None and r.grr < Fraction(9, 10) and r.nrr >= 1:
        warnings.append(f"expansion masks churn: GRR {decimal_text(r.grr * 100, 1)}% is below "
                        f"90% while NRR is {decimal_text(r.nrr * 100, 1)}%")
    if r.grr is not None and r.grr < Fraction(9, 10) and from_price > from_quantity:
        warnings.append("most expansion came from price or plan changes, not from more "
                        "units, while GRR is below 90%: price rises may hide churn")
    if r.customers and r.churned * 10 > r.customers:
        warnings.append(f"logo churn above 10%: {r.churned} of {r.customers} customers left")
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        **money("mrr_at_start", m0, places), "customers_at_start": c0,
        **money("mrr_at_end", m1, places), "customers_at_end": c1,
        **money("arr_at_start", kpis.arr(m0), places), **money("arr_at_end", kpis.arr(m1), places),
        **optional_money("arpa_at_start", kpis.arpa(m0, c0)),
        **optional_money("arpa_at_end", kpis.arpa(m1, c1)),
        **retention_fields(r, places),  # of the customers paying at the start (the NRR cohort)
        "churned_customers": r.churned,
        **ratio("logo_churn", logo_churn),
        **ratio("quick_ratio", kpis.quick_ratio(gained, lost)),
        "nrr_band": band(r.nrr),
        **money("expansion_from_quantity", from_quantity, places),
        **money("expansion_from_price_or_plan", from_price, places),
        "movements": {k: v for kind in KINDS
                      for k, v in money(kind, totals[kind], places).items()},
        "warnings": warnings,
        "reporting_currency": e.reporting,
        "manifest": reflects,
    }


def chart_series(url: str, kind: str, first: date, last: date, known_at: str | None = None,
                 grain: str = "month", metric: str = "nrr") -> dict[str, Any]:
    """What a chart draws, exact: MRR at each month end; the movements of each month;
    trailing-12-month NRR and GRR at each month end with the customers behind each point;
    or the cohort triangle (`grain`, `metric`). With the reporting currency and the
    manifest, which the chart prints."""
    if kind == "cohorts":
        report = cohorts_report(url, first, last, grain, metric, None, known_at)
        with open_ledger(url) as app:
            currency = reporting_currency(app)
        return {"kind": kind, "grain": grain, "metric": metric, "cohorts": report["cohorts"],
                "currency": currency, "manifest": report["manifest"]}
    span = months(first.replace(day=1), last.replace(day=1))
    with open_ledger(url) as app:
        e, reflects = engine_for(app, known_at)
        currency = reporting_currency(app)
    return series_of(e, kind, span, currency, reflects)


def series_of(e: MRRIndex, kind: str, span: list[date], currency: str,
              reflects: dict[str, Any]) -> dict[str, Any]:
    """A monthly series (`mrr`, `movements` or `nrr`) over the months `span` from an
    engine."""
    if kind == "mrr":
        points = [{"month": month_label(m), "mrr": e.total(month_end(m))[0]} for m in span]
    elif kind == "movements":
        points = [{"month": mv.month, **{k: getattr(mv, k) for k in KINDS}}
                  for mv in e.movements(span[0], span[-1])]
    else:
        points = []
        for m in span:
            year_before = _months_back(m, 12)
            r = e.nrr(month_end(year_before), month_end(m), None, None) if year_before \
                else None  # before 0001-01 nobody paid: no cohort
            points.append({"month": month_label(m), "nrr": r and r.nrr, "grr": r and r.grr,
                           "customers": r.customers if r else 0})
    return {"kind": kind, "points": points, "currency": currency, "manifest": reflects}


def _months_back(first: date, count: int) -> date | None:
    """The month `count` months before, or None before 0001-01."""
    month = first.year * 12 + first.month - 1 - count
    return date(month // 12, month % 12 + 1, 1) if month >= 12 else None


def report_with_charts(url: str, start: date, end: date,
                       known_at: str | None = None) -> dict[str, Any]:
    """The report, and the charts that go with it (MRR and trailing NRR at the month ends
    of `start`..`end`, the movements of the months after `start`'s, as the report's), all
    read from one engine: one ledger head for all."""
    span = months(start.replace(day=1), end.replace(day=1))
    moved = span[1:] or span
    with open_ledger(url) as app:
        e, reflects = engine_for(app, known_at)
        currency = reporting_currency(app)
        report = summary_of(app, e, reflects, start, end)
    return {"report": report, "currency": currency,
            "charts": [series_of(e, "mrr", span, currency, reflects),
                       series_of(e, "movements", moved, currency, reflects),
                       series_of(e, "nrr", span, currency, reflects)]}
