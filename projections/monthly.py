"""Customer by month: one row per customer and month end, the table dbt's mrr-playbook
builds (`customer_revenue_by_month` with its `change_category`).

A customer has a row in a month when it paid at the end of the month before or at the
end of this one; its movement category is the month's movement rule
(`projections.movements.split`) applied to that one customer, so the rows of a month
summed by category, less each row's `fx` (what the exchange rates alone moved, contract
v2), are exactly that month's `movements`. A customer paying the same at
both ends has no category ("").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np

from projections.columns import NEVER
from projections.engine import MRRIndex
from projections.movements import KINDS
from projections.movements import split as movement_split
from projections.periods import month_end, month_label

CATEGORIES = ("", *KINDS)  # a customer with no movement: ""


@dataclass(frozen=True)
class MonthRows:
    """A month's rows, as columns. MRRs are integers of 1/`denominator` cents of the
    reporting currency: each at its month end's exchange rates."""

    month: str
    customers: list[str]
    mrr: np.ndarray  # at the month's end
    previous_mrr: np.ndarray  # at the end of the month before
    fx: np.ndarray  # contract v2: mrr at the month end's rates - at the month before's
    category: list[str]
    first_paid_month: list[str]
    attributes: dict[str, list[str | None]]  # at the month's end, by key
    denominator: int


def customer_months(index: MRRIndex, first: date, last: date) -> Iterator[MonthRows]:
    """The rows of each month `first`..`last`, customers in the index's order."""
    first_paid = _months_of(index.first_paid)
    for month, p, q_same, q, paid, denominator in index.month_ends(first, last):
        # classified at the month before's rates (contract v2); the MRRs at their own
        code = np.zeros(len(p), dtype=np.int8)
        for number, mask in enumerate(movement_split(p, q_same, paid), start=1):
            code[mask] = number  # its index in CATEGORIES
        rows = np.flatnonzero((p > 0) | (q > 0))
        attributes = {
            key: [None if c < 0 else values[c] for c in codes[rows].tolist()]
            for key, (codes, values) in index.attributes_at(month_end(month)).items()
        }
        yield MonthRows(
            month=month_label(month),
            customers=[index.customers[i] for i in rows.tolist()],
            mrr=q[rows],
            previous_mrr=p[rows],
            fx=q[rows] - q_same[rows],
            category=[CATEGORIES[c] for c in code[rows].tolist()],
            first_paid_month=[first_paid[i] for i in rows.tolist()],
            attributes=attributes,
            denominator=denominator,
        )


def _months_of(instants: np.ndarray) -> list[str]:
    """`YYYY-MM` of each first paid instant (microseconds since the epoch); "" for none."""
    paid = instants != NEVER
    labels = np.where(paid, instants, 0).astype("datetime64[us]").astype("datetime64[M]")
    texts = np.datetime_as_string(labels, unit="M").tolist()
    return [m if ok else "" for m, ok in zip(texts, paid.tolist(), strict=True)]
