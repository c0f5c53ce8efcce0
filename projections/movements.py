"""Monthly MRR movements from month-end snapshots (contract: Monthly MRR movements)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

ZERO = Fraction(0)
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
T = TypeVar("T", bound=Any)  # a number, or an array of them


@dataclass(frozen=True)
class Movement:
    month: str
    new: Fraction = ZERO
    expansion: Fraction = ZERO
    contraction: Fraction = ZERO
    churn: Fraction = ZERO
    reactivation: Fraction = ZERO


def split(p: T, q: T) -> tuple[T, T, T, T]:
    """A customer's movement in a month, p at the previous month end and q at this one:
    (expansion, contraction, churn, start) — a start is new or a reactivation by whether
    it paid at an earlier month end. Written with `&`, so it holds alike for two numbers
    (bools) and for two arrays of every customer's (masks): the one statement of the rule."""
    return (p > 0) & (q > p), (q > 0) & (q < p), (p > 0) & (q == 0), (p == 0) & (q > 0)
