"""Where expansion came from: more units (quantity) or a higher price or another plan.

Price rises can hide a retention problem (customers pay more for the same use), so the
report splits the NRR cohort's expansion. For a customer whose MRR grew from the start
bound to the end bound, each subscription's change is split as
`quantity part = (q1 - q0) x unit MRR at the start` and the rest (a new price, plan or
interval, or a new subscription) as the price/plan part. The parts add up to the
customer's expansion exactly. Both ends are valued at the start's exchange rates
(constant currency, contract v2): a rate's move is neither part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction

from projections.facts import Fact
from projections.fold import EFFECTIVE_ORDER
from projections.mrr import SubscriptionState, apply
from projections.nrr import split as retention_split

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


def split_expansion(
    customers: Iterable[tuple[str, list[Fact]]], start: str, end: str,
    worth: Callable[[dict[str, Fraction], str], Fraction] = lambda native, bound: sum(
        native.values(), ZERO),
) -> tuple[Fraction, Fraction]:
    """(quantity part, price/plan part) of the expansion of customers paying at `start`;
    `worth` values MRR per currency in the reporting currency at a bound's rates."""
    quantity = price = ZERO

    def value(state: SubscriptionState) -> Fraction:
        return worth({state.currency: state.mrr}, start) if state.active else ZERO  # type: ignore[dict-item]

    for _, facts in customers:
        before, after = states_at(facts, start), states_at(facts, end)
        m0 = sum((value(s) for s in before.values()), ZERO)
        m1 = sum((value(s) for s in after.values()), ZERO)
        if m0 <= 0 or not retention_split(m0, m1)[1]:  # outside the cohort, or no expansion
            continue
        for sub in before.keys() | after.keys():
            s0, s1 = before.get(sub, SubscriptionState()), after.get(sub, SubscriptionState())
            units = ((s1.quantity - s0.quantity) * value(s0) / s0.quantity
                     if s0.active and s1.active and s0.quantity else ZERO)
            quantity += units
            price += value(s1) - value(s0) - units
    return quantity, price
