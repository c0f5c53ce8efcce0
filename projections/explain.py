"""Explaining a figure: which customers make up an NRR, and which events moved each one.

Pure, over the same fold and cohort rule as the reference NRR, so the rows add up to the
`nrr` figures exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from projections.facts import Fact
from projections.fold import CustomerHistory
from projections.periods import Period
from projections.reference import cohort


@dataclass(frozen=True)
class Contribution:
    customer_id: str
    starting_mrr: Fraction
    ending_mrr: Fraction
    event_ids: tuple[str, ...]  # visible events effective in the period that moved its MRR

    @property
    def category(self) -> str:
        """The contract's split of a cohort customer's change (flat: no change)."""
        if self.ending_mrr == 0:
            return "churn"
        if self.ending_mrr > self.starting_mrr:
            return "expansion"
        if self.ending_mrr < self.starting_mrr:
            return "contraction"
        return "flat"


def explain_nrr(
    histories: Mapping[str, CustomerHistory],
    facts: Mapping[str, list[Fact]],
    start: str,
    end: str,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
) -> list[Contribution]:
    """One row per cohort customer, in customer order."""
    rows = []
    for customer, m0, m1 in cohort(histories, start, end, vintage, segment):
        changes = {at for at, _ in histories[customer].steps if start <= at < end}
        moved = sorted(
            (f for f in facts[customer]
             if f.effective_at in changes and f.subscription_id is not None),
            key=lambda f: (f.effective_at, f.position),
        )
        rows.append(Contribution(customer, m0, m1, tuple(f.event_id for f in moved)))
    return rows
