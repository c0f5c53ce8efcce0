"""Metrics straight from folded customer histories: the reference computation.

Clear per-customer loops, exactly as the contract words them. Queries on a known-at
replay use it, and the tests hold the fast engine (`projections.engine`) to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from fractions import Fraction

from projections.fold import CustomerHistory, attributes_before, mrr_before
from projections.movements import Movement, classify
from projections.nrr import Retention, retention
from projections.periods import Period, month_end, months, next_month, previous_month

Histories = Mapping[str, CustomerHistory]


def mrr_at(histories: Histories, bound: str) -> tuple[Fraction, int]:
    """Total MRR and the number of customers with MRR > 0, before `bound`."""
    values = [mrr_before(h.steps, bound) for h in histories.values()]
    return sum(values, Fraction(0)), sum(1 for v in values if v > 0)


def nrr(
    histories: Histories,
    start: str,
    end: str,
    cohort: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> Retention:
    pairs = []
    for history in histories.values():
        m0 = mrr_before(history.steps, start)
        if m0 <= 0:
            continue
        if cohort and not (cohort.start <= (history.first_paid or "") < cohort.end):
            continue
        if segment:
            attributes = attributes_before(history, start)
            if any(attributes.get(k) != v for k, v in segment.items()):
                continue
        pairs.append((m0, mrr_before(history.steps, end)))
    return retention(pairs)


def movements(histories: Histories, first: date, last: date) -> list[Movement]:
    out = []
    span = months(first, last)
    for month in span:
        sums: dict[str, Fraction] = {}
        previous = month_end(previous_month(month))
        for history in histories.values():
            p = mrr_before(history.steps, previous)
            q = mrr_before(history.steps, month_end(month))
            paid_before = p > 0 or _paid_at_a_month_end_before(history, previous)
            kind = classify(p, q, paid_before)
            if kind:
                sums[kind[0]] = sums.get(kind[0], Fraction(0)) + kind[1]
        out.append(Movement(month.strftime("%Y-%m"), **sums))
    return out


def _paid_at_a_month_end_before(history: CustomerHistory, bound: str) -> bool:
    """Whether MRR was > 0 at some month end before `bound` (itself a month end)."""
    if not history.steps:
        return False
    month = date.fromisoformat(history.steps[0][0][:7] + "-01")
    while (end := month_end(month)) <= bound:
        if mrr_before(history.steps, end) > 0:
            return True
        month = next_month(month)
    return False
