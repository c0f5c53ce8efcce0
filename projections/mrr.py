"""A subscription's state and its monthly recurring revenue (contract: Folding a subscription).

Amounts are integer cents; MRR is an exact `Fraction` of cents. Nothing here rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from ledger.events import amount_to_cents

# Months per billing interval, inverted: MRR = amount x quantity x F / interval_count.
MONTHLY_FACTOR = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}
TERMS = ("amount", "currency", "interval", "interval_count", "quantity")
ZERO = Fraction(0)


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    active: bool = False
    amount: int = 0  # cents per interval
    quantity: int = 1
    interval: str = "month"
    interval_count: int = 1
    currency: str | None = None

    @property
    def mrr(self) -> Fraction:
        if not self.active:
            return ZERO
        factor = MONTHLY_FACTOR[self.interval]
        return self.amount * self.quantity * factor / self.interval_count


_DEFAULTS = {"interval_count": 1, "quantity": 1}


def apply(state: SubscriptionState, type: str, payload: dict[str, Any]) -> SubscriptionState:
    """The state after one event: it sets the fields it names, and `active` by its type.

    `started` and `reactivated` name every term (interval_count and quantity default to
    1); `changed` names only what it carries; `cancelled` names none.
    """
    full = type in ("subscription.started", "subscription.reactivated")
    changes: dict[str, Any] = {}
    for term in TERMS:
        if term in payload:
            changes[term] = payload[term]
        elif full and term in _DEFAULTS:
            changes[term] = _DEFAULTS[term]
    if "amount" in changes:
        changes["amount"] = amount_to_cents(changes["amount"])
    if full:
        changes["active"] = True
    elif type == "subscription.cancelled":
        changes["active"] = False
    return replace(state, **changes) if changes else state
