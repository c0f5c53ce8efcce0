"""Net and gross revenue retention over a period (contract: NRR / GRR, endpoint definition)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

ZERO = Fraction(0)


@dataclass(frozen=True)
class Retention:
    customers: int
    starting_mrr: Fraction
    ending_mrr: Fraction
    expansion: Fraction
    contraction: Fraction
    churn: Fraction
    churned: int = 0  # customers with no MRR at the end

    @property
    def nrr(self) -> Fraction | None:
        return self.ending_mrr / self.starting_mrr if self.starting_mrr else None

    @property
    def grr(self) -> Fraction | None:
        kept = self.starting_mrr - self.contraction - self.churn
        return kept / self.starting_mrr if self.starting_mrr else None


def retention(pairs: Iterable[tuple[Fraction, Fraction]]) -> Retention:
    """From each cohort customer's (MRR at start > 0, MRR at end)."""
    customers = churned = 0
    starting = ending = expansion = contraction = churn = ZERO
    for m0, m1 in pairs:
        customers += 1
        starting += m0
        ending += m1
        if m1 == 0:
            churn += m0
            churned += 1
        elif m1 > m0:
            expansion += m1 - m0
        elif m1 < m0:
            contraction += m0 - m1
    return Retention(customers, starting, ending, expansion, contraction, churn, churned)
