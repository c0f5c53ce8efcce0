"""Where expansion came from: more units (quantity) or a higher price or another plan.

Price rises can hide a retention problem (customers pay more for the same use), so the
report splits the NRR cohort's expansion. For a customer whose MRR grew from the start
bound to the end bound, each subscription's change is split as
`quantity part = (q1 - q0) x unit MRR at the start` and the rest (a new price, plan or
interval, or a new subscription) as the price/plan part. The parts add up to the
customer's expansion exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER
from projections.mrr import SubscriptionState, apply

ZERO = Fraction(0)


def states_at(facts: list[Fact], bound: str) -> dict[str, SubscriptionState]:
    """Each subscription's state counting the facts effective strictly before `bound`
    (visible facts only, applied in effective order, ties in recorded order)."""
    states: dict[str, SubscriptionState] = {}
    for fact in sorted(facts, key=EFFECTIVE_ORDER):
        if fact.subscription_id is None or fact.effective_at >= bound:  # type: ignore[operator]
            continue
        states[fact.subscription_id] = apply(
            states.get(fact.subscription_id, SubscriptionState()), fact.type, fact.payload)
    return states


def _unit(state: SubscriptionState) -> Fraction:
    return state.mrr / state.quantity if state.active else ZERO


def split_expansion(
    customers: Iterable[tuple[str, list[Fact]]], start: str, end: str
) -> tuple[Fraction, Fraction]:
    """(quantity part, price/plan part) of the expansion of customers paying at `start`."""
    quantity = price = ZERO
    for _, facts in customers:
        before, after = states_at(facts, start), states_at(facts, end)
        m0 = sum((s.mrr for s in before.values()), ZERO)
        m1 = sum((s.mrr for s in after.values()), ZERO)
        if m0 <= 0 or m1 <= m0:
            continue
        for sub in before.keys() | after.keys():
            s0, s1 = before.get(sub, SubscriptionState()), after.get(sub, SubscriptionState())
            units = (s1.quantity - s0.quantity) * _unit(s0) if s0.active and s1.active else ZERO
            quantity += units
            price += s1.mrr - s0.mrr - units
    return quantity, price
