"""Stripe as a billing source: Event and Subscription objects -> canonical events (the
mapping in docs/integrations.md), what the ledger learns of Stripe's discounts, and exports.

Pure: no HTTP, no store. Every subscription event carries the whole Subscription object,
so each maps to a `subscription.snapshot` (contract v1.1): the subscription's whole state
at that instant, right on its own whatever arrived before it. The canonical `event_id` is
`stripe:` + the Stripe event id, so a redelivery is a duplicate. The Stripe event rides
along (`stripe_event`, less the delivery counter `pending_webhooks`) for the audit trail.

Since API 2025-03-31.basil a subscription names its discounts by id only, and since
2025-09-30.clover a discount names its coupon by id: the objects come in
`customer.discount.*` and `coupon.*` events (or a backfill), which the ledger learns
(`learned_objects`); a subscription needing one not learned yet raises `NeedsObject`, and
the service quarantines it until it is known. Nothing is guessed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.events import InvalidEvent
from ledger.instants import format_instant
from ledger.kinds import CUSTOMER_CREATED, CUSTOMER_UPDATED, SNAPSHOT
from ledger.sources.stripe_terms import (
    STRIPE_DEFAULT,
    Lookup,
    NeedsObject,
    Policy,
    Terms,
    subscription_terms,
)

__all__ = ["COUNTING", "LIFECYCLE", "NeedsObject", "Policy", "canonical_event",
           "learned_objects", "snapshot_of_export"]

# Stripe's lifecycle: the order of a subscription's events within one second (Stripe's
# timestamps are whole seconds, and it does not deliver in order).
LIFECYCLE = {
    "customer.subscription.created": 0,
    "customer.subscription.trial_will_end": 1,
    "customer.subscription.updated": 1,
    "customer.subscription.pending_update_applied": 1,
    "customer.subscription.pending_update_expired": 1,
    "customer.subscription.paused": 2,
    "customer.subscription.resumed": 3,
    "customer.subscription.deleted": 4,
}
CUSTOMER_TYPES = (CUSTOMER_CREATED, CUSTOMER_UPDATED)
LEARNED_TYPES = ("customer.discount.created", "customer.discount.updated",
                 "customer.discount.deleted", "coupon.created", "coupon.updated",
                 "coupon.deleted", "price.created", "price.updated", "plan.created",
                 "plan.updated")
COUNTING = ("active", "past_due")  # Stripe's MRR counts these statuses, no other
# every status Stripe documents for a Subscription; another is a shape this mapping does
# not know, held rather than guessed at
STATUSES = frozenset((*COUNTING, "trialing", "incomplete", "incomplete_expired", "canceled",
                      "unpaid", "paused"))
_NO_LOOKUP: Lookup = lambda object_id: None  # noqa: E731


def canonical_event(event: Mapping[str, Any], lookup: Lookup = _NO_LOOKUP,
                    policy: Policy = STRIPE_DEFAULT) -> dict[str, Any] | None:
    """The canonical event for a Stripe Event object, or None for a type that carries no
    revenue. `InvalidEvent` for an object the mapping cannot read, `NeedsObject` for a
    discount or coupon not learned yet."""
    kind = event.get("type")
    if kind not in LIFECYCLE and kind not in CUSTOMER_TYPES:
        return None
    stripe_id = _text(event, "id")
    event_id = "stripe:" + stripe_id
    try:
        obj = event["data"]["object"]
        created = _seconds(event["created"])
        if kind in CUSTOMER_TYPES:
            body = _customer(kind, obj, created)
        else:
            body = _snapshot(obj, _effective(kind, obj, created, stripe_id), created,
                             lookup, policy, ended=kind == "customer.subscription.deleted")
    except KeyError as exc:
        raise InvalidEvent(event_id, f"{kind}: no {exc.args[0]!r} in the object") from None
    except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise InvalidEvent(event_id, f"{kind}: unreadable object ({exc})") from None
    return {"event_id": event_id, **body,
            "stripe_event": {k: v for k, v in event.items() if k != "pending_webhooks"}}


def _effective(kind: str, sub: Mapping[str, Any], created: int, stripe_id: str) -> str:
    """When the state an event shows took effect, to the microsecond: the second Stripe
    stamped, then the lifecycle's rank (created, updated, paused, resumed, deleted), then
    a fixed digest of the event id between events of one rank, so any delivery order
    folds the same way."""
    second = created
    if kind == "customer.subscription.created":
        start = sub.get("start_date", sub.get("start"))
        second = min(_seconds(start), created) if start is not None else created
    elif kind == "customer.subscription.deleted":
        ended = sub.get("ended_at") or sub.get("canceled_at")
        second = _seconds(ended) if ended is not None else created
    tiebreak = int.from_bytes(hashlib.sha256(stripe_id.encode()).digest()[:4]) % 100_000
    return _instant(second, LIFECYCLE[kind] * 100_000 + tiebreak)


def _snapshot(sub: Mapping[str, Any], effective_at: str, at: int, lookup: Lookup,
              policy: Policy, ended: bool = False) -> dict[str, Any]:
    """A Subscription object as the ledger's whole-state event."""
    ids = {"subscription_id": _text(sub, "id"), "customer_id": _customer_id(sub["customer"])}
    active = not ended and counts(sub, policy)
    if active:
        terms = subscription_terms(sub, at, lookup, policy)
    else:  # counts for nothing: no discount is looked up, nothing can be missing
        terms = _inactive_terms(sub, at, policy)
    return {"type": SNAPSHOT, **ids, "effective_at": effective_at,
            "status": "active" if active else "inactive",
            "plan": terms.plan, "amount": terms.amount, "currency": terms.currency,
            "interval": terms.interval, "interval_count": terms.interval_count,
            "quantity": terms.quantity}


def counts(sub: Mapping[str, Any], policy: Policy) -> bool:
    """Whether Stripe's MRR counts the subscription: `active` or `past_due`, and (by
    default) no cancellation scheduled, which stops it counting from the moment it is
    scheduled (support.stripe.com: cancellations and MRR)."""
    status = sub.get("status")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is none of those Stripe documents")
    if status not in COUNTING:
        return False
    scheduled = bool(sub.get("cancel_at_period_end")) or sub.get("cancel_at") is not None
    return not (scheduled and policy.cancel_when_scheduled)


def _inactive_terms(sub: Mapping[str, Any], at: int, policy: Policy) -> Terms:
    try:
        return subscription_terms(sub, at, _NO_LOOKUP, policy, discounted=False)
    except NeedsObject:  # tiers not in the payload: the list amount is unknown, and moot
        items = sub["items"]["data"]
        price = items[0].get("price") or items[0].get("plan")
        recurring = price.get("recurring") or price
        return Terms("+".join(str((i.get("price") or i.get("plan"))["id"]) for i in items),
                     "0", str(price["currency"]).upper(), str(recurring["interval"]),
                     int(recurring.get("interval_count") or 1), 1)


def _customer(kind: str, obj: Mapping[str, Any], created: int) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    at = _seconds(obj["created"]) if kind == CUSTOMER_CREATED else created
    return {"type": kind, "customer_id": _text(obj, "id"), "effective_at": _instant(at),
            "attributes": {str(k): str(v) for k, v in metadata.items()}}


def learned_objects(record: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(id, object) of every Discount and Coupon an Event or Subscription object carries
    whole: a `customer.discount.*` or `coupon.*` event's object, and discounts expanded in
    a subscription (a backfill's `expand`), with their embedded coupons; and prices with
    their `tiers` (which only a backfill's `expand` carries)."""
    found: list[tuple[str, dict[str, Any]]] = []

    def keep(value: Any) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            return
        kind = value.get("object")
        if kind in ("discount", "coupon") or (kind in ("price", "plan") and value.get("tiers")):
            found.append((value["id"], value))
        if kind == "discount":  # its coupon, embedded or expanded under `source`
            keep(value.get("coupon"))
            keep((value.get("source") or {}).get("coupon"))

    def discounts_of(obj: Mapping[str, Any]) -> None:
        keep(obj.get("discount"))
        for ref in obj.get("discounts") or []:
            keep(ref)

    if record.get("object") == "event":
        obj = (record.get("data") or {}).get("object")
        if record.get("type") in LEARNED_TYPES:
            keep(obj)
            return found
        if not str(record.get("type")).startswith("customer.subscription."):
            return found
        record = obj if isinstance(obj, dict) else {}
    if record.get("object") == "subscription":
        discounts_of(record)
        for item in (record.get("items") or {}).get("data") or []:
            if isinstance(item, dict):
                discounts_of(item)
                keep(item.get("price") or item.get("plan"))
    return found


def snapshot_of_export(sub: Mapping[str, Any], lookup: Lookup = _NO_LOOKUP,
                       policy: Policy = STRIPE_DEFAULT) -> list[dict[str, Any]]:
    """A Subscription object from an export (`stripe subscriptions list --status all`) as
    snapshots: its current terms from its start (or the end of its trial) and, when it no
    longer counts, inactive from when it stopped (ended, scheduled to cancel, or the
    current period's start for `unpaid` / `past_due`-turned). Ids: `stripe:` + the
    subscription id + `@` + the Unix second, so importing the same export again stores
    nothing twice."""
    sub_id = _text(sub, "id")
    try:
        start = _seconds(sub.get("start_date", sub.get("start", sub["created"])))
        trial_end = sub.get("trial_end")
        paying_from = max(start, _seconds(trial_end)) if trial_end else start
        stop = _stopped_at(sub, policy)
        out = []
        if stop is None or (stop > paying_from and sub.get("status") not in (
                "trialing", "incomplete", "incomplete_expired")):
            active = {**sub, "status": "active", "cancel_at_period_end": False,
                      "cancel_at": None}
            out.append(("active", paying_from, _snapshot(active, _instant(paying_from),
                                                         paying_from, lookup, policy)))
        if stop is not None:
            out.append(("inactive", stop, _snapshot(sub, _instant(stop, 400_000), stop,
                                                    lookup, policy, ended=True)))
    except KeyError as exc:
        raise InvalidEvent("stripe:" + sub_id, f"subscription: no {exc.args[0]!r}") from None
    except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise InvalidEvent("stripe:" + sub_id, f"subscription: unreadable ({exc})") from None
    return [{"event_id": f"stripe:{sub_id}@{second}", **body,
             "stripe_subscription": dict(sub)} for _, second, body in out]


def _stopped_at(sub: Mapping[str, Any], policy: Policy) -> int | None:
    """When an exported subscription stopped counting, or None if it counts now."""
    if counts(sub, policy):
        return None
    status = sub.get("status")
    if status in COUNTING:  # a cancellation is scheduled: it stopped when scheduled
        return _seconds(sub.get("canceled_at") or sub["created"])
    for key in ("ended_at", "canceled_at"):
        if sub.get(key):
            return _seconds(sub[key])
    period = sub.get("current_period_start") or max(
        (i.get("current_period_start") or 0 for i in sub["items"]["data"]), default=0)
    return _seconds(period or sub.get("start_date", sub["created"]))


def _customer_id(value: Any) -> str:
    return value["id"] if isinstance(value, dict) else str(value)


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("-", f"{key}: a non-empty string is required")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a Unix timestamp: {value!r}")
    return value


def _instant(seconds: int, micro: int = 0) -> str:
    """A Stripe timestamp (Unix seconds) and a microsecond within it, as UTC text."""
    return format_instant(datetime.fromtimestamp(seconds, UTC).replace(microsecond=micro))
