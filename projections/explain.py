"""Explaining a figure: which customers make up an NRR, and which events moved each one.

Pure, over the fold's histories; the tests hold its rows' sums to the reference NRR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction

from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER, CustomerHistory, attributes_before, native_before
from projections.nrr import category
from projections.periods import Period


@dataclass(frozen=True)
class Contribution:
    customer_id: str
    starting_mrr: Fraction
    ending_mrr: Fraction
    event_ids: tuple[str, ...]  # visible events effective in the period that moved its MRR
    constant_ending: Fraction  # the end's MRR at the start's rates (contract v2)

    @property
    def fx_impact(self) -> Fraction:
        return self.ending_mrr - self.constant_ending

    @property
    def category(self) -> str:
        """The contract's split of a cohort customer's change at constant currency (flat:
        no change)."""
        return category(self.starting_mrr, self.constant_ending)


# A customer's MRR per currency, valued in the reporting currency at a bound's rates
Worth = Callable[[dict[str, Fraction], str], Fraction]


def explain_nrr(
    histories: Mapping[str, CustomerHistory],
    facts: Mapping[str, list[Fact]],
    start: str,
    end: str,
    worth: Worth,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> list[Contribution]:
    """One row per cohort customer, in customer order."""
    rows = []
    for customer, m0, m1, c1 in cohort(histories, start, end, worth, vintage, segment):
        changes = {at for steps in histories[customer].steps.values() for at, _ in steps
                   if start <= at < end}
        moved = sorted(
            (f for f in facts[customer]
             if f.effective_at in changes and f.subscription_id is not None),
            key=EFFECTIVE_ORDER,
        )
        rows.append(Contribution(customer, m0, m1, tuple(f.event_id for f in moved), c1))
    return rows


def cohort(
    histories: Mapping[str, CustomerHistory],
    start: str,
    end: str,
    worth: Worth,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, Fraction, Fraction, Fraction]]:
    """(customer, MRR at start > 0, MRR at end, MRR at end at the start's rates) of each
    customer in the NRR cohort."""
    for customer, history in histories.items():
        n0 = native_before(history, start)
        if not any(value > 0 for value in n0.values()):
            continue
        if vintage and not (vintage.start <= (history.first_paid or "") < vintage.end):
            continue
        if segment:
            attributes = attributes_before(history, start)
            if any(attributes.get(k) != v for k, v in segment.items()):
                continue
        n1 = native_before(history, end)
        yield customer, worth(n0, start), worth(n1, end), worth(n1, start)
