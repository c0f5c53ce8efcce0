"""A subscription's state and its monthly recurring revenue (contract: Folding a subscription).

Amounts are integer cents; MRR is an exact `Fraction` of cents. Nothing here rounds.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

from ledger.kinds import STARTS

# F, the intervals per month, as twelfths: MRR = amount x quantity x F / interval_count.
TWELFTHS = {"month": 12, "year": 1, "week": 52, "day": 365}
ZERO = Fraction(0)


class SubscriptionState(NamedTuple):
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
        return Fraction(
            self.amount * self.quantity * TWELFTHS[self.interval], 12 * self.interval_count
        )


@lru_cache(maxsize=1 << 16)
def amount_to_cents(amount: str) -> int:
    """`"99.5"` -> 9950, for a validated amount (digits, at most 2 decimal places).
    Cached: a ledger repeats its plans' prices on most events."""
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int(cents.ljust(2, "0"))



def apply(state: SubscriptionState, type: str, payload: dict[str, Any]) -> SubscriptionState:
    """The state after one event: it sets the fields it names, and `active` by its type.

    `started` and `reactivated` name every term (interval_count and quantity default to
    1); `changed` names only what it carries; `cancelled` names none. Fields a type does
    not define (extra fields kept for the audit trail) are ignored.
    """
    if type in STARTS:
        return SubscriptionState(
            True,
            amount_to_cents(payload["amount"]),
            payload.get("quantity", 1),
            payload["interval"],
            payload.get("interval_count", 1),
            payload["currency"],
        )
    if type == "subscription.cancelled":
        return state._replace(active=False)
    get = payload.get  # a null names nothing, like an absent field (ingest refuses it)
    amount, quantity = get("amount"), get("quantity")
    interval, count, currency = get("interval"), get("interval_count"), get("currency")
    return SubscriptionState(  # built whole: several times faster than `_replace`
        state.active,
        state.amount if amount is None else amount_to_cents(amount),
        state.quantity if quantity is None else quantity,
        state.interval if interval is None else interval,
        state.interval_count if count is None else count,
        state.currency if currency is None else currency,
    )
