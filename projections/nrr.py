"""Net and gross revenue retention over a period (contract: NRR / GRR, endpoint definition)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

ZERO = Fraction(0)
T = TypeVar("T", bound=Any)  # a number, or an array of them


@dataclass(frozen=True)
class Retention:
    customers: int
    starting_mrr: Fraction
    ending_mrr: Fraction
    expansion: Fraction
    contraction: Fraction
    churn: Fraction
    churned: int = 0  # customers with no MRR at the end
    # contract v2: ending at the end's rates minus ending at the start's (constant
    # currency); starting + expansion - contraction - churn + fx_impact = ending
    fx_impact: Fraction = ZERO

    @property
    def constant_currency_ending(self) -> Fraction:
        return self.ending_mrr - self.fx_impact

    @property
    def nrr_constant_currency(self) -> Fraction | None:
        return self.constant_currency_ending / self.starting_mrr if self.starting_mrr else None

    @property
    def nrr(self) -> Fraction | None:
        return self.ending_mrr / self.starting_mrr if self.starting_mrr else None

    @property
    def grr(self) -> Fraction | None:
        kept = self.starting_mrr - self.contraction - self.churn
        return kept / self.starting_mrr if self.starting_mrr else None


def split(m0: T, m1: T) -> tuple[T, T, T]:
    """A cohort customer's change from m0 = MRR(start) > 0 to m1 = MRR(end): (churn,
    expansion, contraction), none of them when flat. Written with `&`, so it holds alike for
    two numbers (bools) and for two arrays of every customer's (masks): the one statement
    of the rule."""
    return m1 == 0, m1 > m0, (m1 > 0) & (m1 < m0)


def cells(m0: T, m1: T) -> dict[str, T]:
    """What each category counts of that change: churn m0, expansion m1 - m0, contraction
    m0 - m1, 0 outside the category. A mask times an amount (True x a is a, False x a is
    0), so it too holds alike for numbers and for arrays, and stays one vectorised pass."""
    churn, expansion, contraction = split(m0, m1)
    return {"churn": churn * m0, "expansion": expansion * (m1 - m0),
            "contraction": contraction * (m0 - m1)}


def category(m0: Fraction, m1: Fraction) -> str:
    churn, expansion, contraction = split(m0, m1)
    return ("churn" if churn else "expansion" if expansion
            else "contraction" if contraction else "flat")


def retention(rows: Iterable[tuple[Fraction, ...]]) -> Retention:
    """From each cohort customer's (MRR at start > 0, MRR at end) or (m0, m1, c1): c1, the
    end at the start's rates, is what is classified (contract v2); m1 when left out."""
    customers = churned = 0
    starting = ending = constant = expansion = contraction = churn = ZERO
    for m0, m1, *rest in rows:
        c1 = rest[0] if rest else m1
        customers += 1
        starting += m0
        ending += m1
        constant += c1
        counted = cells(m0, c1)
        churn += counted["churn"]
        expansion += counted["expansion"]
        contraction += counted["contraction"]
        churned += counted["churn"] != 0  # its whole MRR at start, which is > 0
    return Retention(customers, starting, ending, expansion, contraction, churn, churned,
                     ending - constant)
