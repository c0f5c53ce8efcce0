"""Metrics straight from folded customer histories: the reference computation.

Clear per-customer loops, exactly as the contract words them. Queries on a known-at
replay use it, and the tests hold the fast engine (`projections.engine`) to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


def cohort(
    histories: Histories,
    start: str,
    end: str,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, Fraction, Fraction]]:
    """(customer, MRR at start > 0, MRR at end) of each customer in the NRR cohort."""
    for customer, history in histories.items():
        m0 = mrr_before(history.steps, start)
        if m0 <= 0:
            continue
        if vintage and not (vintage.start <= (history.first_paid or "") < vintage.end):
            continue
        if segment:
            attributes = attributes_before(history, start)
            if any(attributes.get(k) != v for k, v in segment.items()):
                continue
        yield customer, m0, mrr_before(history.steps, end)


def nrr(
    histories: Histories,
    start: str,
    end: str,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> Retention:
    return retention((m0, m1) for _, m0, m1 in cohort(histories, start, end, vintage, segment))


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
