"""Monthly MRR movements from month-end snapshots (contract: Monthly MRR movements)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

ZERO = Fraction(0)
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")


@dataclass(frozen=True)
class Movement:
    month: str
    new: Fraction = ZERO
    expansion: Fraction = ZERO
    contraction: Fraction = ZERO
    churn: Fraction = ZERO
    reactivation: Fraction = ZERO


def classify(p: Fraction, q: Fraction, paid_before: bool) -> tuple[str, Fraction] | None:
    """One customer's movement in a month: p at the previous month end, q at this one."""
    if q > p > 0:
        return "expansion", q - p
    if 0 < q < p:
        return "contraction", p - q
    if p > 0 == q:
        return "churn", p
    if p == 0 < q:
        return ("reactivation" if paid_before else "new"), q
    return None
