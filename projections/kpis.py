"""The figures a user expects on day one, each stated once: ARR, ARPA, logo churn rate and
the SaaS quick ratio, from the MRR, the NRR cohort and the monthly movements.

Exact: every figure is a `Fraction` (amounts in the same unit as the MRR they come from);
a ratio whose denominator is zero is None, as the contract has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from projections.movements import Movement
from projections.nrr import Retention


def arr(mrr: Fraction) -> Fraction:
    """Annual recurring revenue: the MRR at a date, times 12 (a run rate, not a forecast)."""
    return 12 * mrr


def arpa(mrr: Fraction, customers: int) -> Fraction | None:
    """Average revenue per account: MRR over the customers paying (MRR > 0) at that date."""
    return mrr / customers if customers else None


def logo_churn_rate(r: Retention) -> Fraction | None:
    """The share of the customers paying at the start (the NRR cohort) who pay nothing at
    the end: endpoint logo churn, beside the revenue churn in GRR."""
    return Fraction(r.churned, r.customers) if r.customers else None


def gained_and_lost(moves: Iterable[Movement]) -> tuple[Fraction, Fraction]:
    """MRR gained (new + expansion + reactivation) and lost (contraction + churn), the
    monthly movements summed over the months."""
    gained = lost = Fraction(0)
    for m in moves:
        gained += m.new + m.expansion + m.reactivation
        lost += m.contraction + m.churn
    return gained, lost


def quick_ratio(gained: Fraction, lost: Fraction) -> Fraction | None:
    """The SaaS quick ratio: MRR gained per unit of MRR lost. None when nothing was lost."""
    return gained / lost if lost else None
