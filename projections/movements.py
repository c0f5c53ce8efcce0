"""Monthly MRR movements from month-end snapshots (contract: Monthly MRR movements; v2: FX)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

from projections.nrr import split as retention_split

ZERO = Fraction(0)
KINDS = ("new", "expansion", "contraction", "churn", "reactivation", "fx")
T = TypeVar("T", bound=Any)  # a number, or an array of them


@dataclass(frozen=True)
class Movement:
    month: str
    new: Fraction = ZERO
    expansion: Fraction = ZERO
    contraction: Fraction = ZERO
    churn: Fraction = ZERO
    reactivation: Fraction = ZERO
    # contract v2: the month end's MRR at its own rates minus at the month before's; the
    # kinds above are classified at the month before's rates, so they add up with it to
    # the month's change in total MRR
    fx: Fraction = ZERO


def split(p: T, q: T, paid: T) -> tuple[T, T, T, T, T]:
    """A customer's movement in a month, p at the previous month end and q at this one,
    `paid` whether it paid at an earlier month end: (new, expansion, contraction, churn,
    reactivation). A customer paying at the previous month end moves as a retained one
    does (`projections.nrr.split`); one starting to pay is new, or a reactivation if it
    paid before. Written with `&`, so it holds alike for one customer's numbers and for
    arrays of every customer's (masks): the one statement of the rule. `paid` is a numpy
    bool or mask (`~` on Python's own bool is not a logical not)."""
    churn, expansion, contraction = retention_split(p, q)
    kept, starts = p > 0, (p == 0) & (q > 0)
    return (starts & ~paid, kept & expansion, kept & contraction, kept & churn,
            starts & paid)


def cells(p: T, q: T, paid: T) -> dict[str, T]:
    """What each kind of movement counts of that month (`split`): new and reactivation
    q, expansion q - p, contraction p - q, churn p; 0 outside the kind. A mask times an
    amount, so it holds alike for numbers and for arrays (one vectorised pass each)."""
    new, expansion, contraction, churn, reactivation = split(p, q, paid)
    return {"new": new * q, "expansion": expansion * (q - p),
            "contraction": contraction * (p - q), "churn": churn * p,
            "reactivation": reactivation * q}
