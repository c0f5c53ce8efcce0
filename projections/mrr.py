"""A subscription's state and its monthly recurring revenue (contract: Folding a subscription).

Amounts are cents: an integer for the usual two decimals, an exact `Fraction` for more (a
unit price may carry 12); MRR is an exact `Fraction` of cents. Nothing here rounds.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

from ledger.kinds import CANCELLED, PER_YEAR, SNAPSHOT, WHOLE

ZERO = Fraction(0)


class SubscriptionState(NamedTuple):
    active: bool = False
    amount: int | Fraction = 0  # cents per interval
    quantity: int = 1
    interval: str = "month"
    interval_count: int = 1
    currency: str | None = None

    @property
    def mrr(self) -> Fraction:
        scale = 12 * self.interval_count
        return Fraction(scaled_mrr(self, scale), scale)


def scaled_mrr(state: SubscriptionState, scale: int) -> int | Fraction:
    """MRR x `scale`, for a `scale` that 12 x interval_count divides: the contract's
    amount x quantity x F / interval_count, with F in twelfths (`PER_YEAR`; whole while
    the amount is whole cents: what the fold's integer arithmetic relies on). 0 when
    inactive."""
    if not state.active:
        return 0
    return (state.amount * state.quantity * PER_YEAR[state.interval]
            * (scale // (12 * state.interval_count)))


@lru_cache(maxsize=1 << 16)
def amount_to_cents(amount: str) -> int | Fraction:
    """`"99.5"` -> 9950 and `"0.123"` -> 123/10: a validated amount (ASCII digits, at most
    12 decimal places) in cents. Cached: a ledger repeats its plans' prices on most events."""
    whole, _, decimals = amount.partition(".")
    if len(decimals) <= 2:
        return int(whole) * 100 + int(decimals.ljust(2, "0"))
    return Fraction(int(whole + decimals), 10 ** (len(decimals) - 2))


def decimals_beyond_cents(amount: str) -> int:
    """How many decimal places an amount has beyond the cents."""
    return max(0, len(amount.partition(".")[2]) - 2)


def apply(state: SubscriptionState, type: str, payload: dict[str, Any]) -> SubscriptionState:
    """The state after one event: it sets the fields it names, and `active` by its type.

    `started`, `reactivated` and `snapshot` name every term (interval_count and quantity
    default to 1); `snapshot` sets `active` from its status. `changed` names only what it
    carries; `cancelled` names none. Fields a type does not define (extra fields kept for
    the audit trail) are ignored.
    """
    if type in WHOLE:
        return SubscriptionState(
            type != SNAPSHOT or payload["status"] == "active",
            amount_to_cents(payload["amount"]),
            payload.get("quantity", 1),
            payload["interval"],
            payload.get("interval_count", 1),
            payload["currency"],
        )
    if type == CANCELLED:
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
