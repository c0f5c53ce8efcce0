"""Stripe as a billing source: Event objects -> canonical events (the mapping in
docs/integrations.md), the webhook's signature, and exports of Event objects.

Pure: no HTTP, no store. A Stripe event maps to at most one canonical event whose
`event_id` is `stripe:` + the Stripe event id, so redelivery (Stripe delivers at least
once) is a duplicate. The Stripe event itself rides along in the payload (`stripe_event`,
less the delivery counter `pending_webhooks`) for the audit trail; metrics ignore it.

Works for API versions before and after 2025-03-31: it reads prices from the items (with
the legacy `plan` as a fallback), discounts from `discount` or `discounts`, and never the
billing-period fields that moved onto the items.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import chain
from typing import Any

import orjson

from ledger.events import DELIVERY, InvalidEvent
from ledger.feed import Rejected
from ledger.instants import format_instant
from ledger.sources.base import Delivery, Ignored, Line, RefusedDelivery, SignatureError, header

SUBSCRIPTION_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
CUSTOMER_TYPES = ("customer.created", "customer.updated")
MAPPED = (*SUBSCRIPTION_TYPES, *CUSTOMER_TYPES)

# Statuses in which a subscription is not (yet) paying: amount 0 until active.
_UNPAID = ("trialing", "incomplete")
_ENDED = ("canceled", "incomplete_expired")
# Currencies whose minor unit is not 1/100 (Stripe's list).
_ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                 "VND", "VUV", "XAF", "XOF", "XPF"}
_THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
_CENT = Decimal("0.01")
TOLERANCE = 300  # seconds between Stripe signing and our check, either way


def canonical_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The canonical event for a Stripe Event object, or None for a type not mapped."""
    kind = event.get("type")
    if kind not in MAPPED:
        return None
    stripe_id = _text(event, "id")
    try:
        obj = event["data"]["object"]
        created = _instant(event["created"])
    except (KeyError, TypeError):
        raise InvalidEvent("stripe:" + stripe_id, "data.object and created are required") from None
    base = {
        "event_id": "stripe:" + stripe_id,
        "stripe_event": {k: v for k, v in event.items() if k != "pending_webhooks"},
    }
    try:
        if kind in CUSTOMER_TYPES:
            return {**base, **_customer(kind, obj, created)}
        return {**base, **_subscription(kind, obj, event.get("data", {}), created)}
    except KeyError as exc:
        raise InvalidEvent(base["event_id"], f"{kind}: no {exc.args[0]!r} in the object") \
            from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidEvent(base["event_id"], f"{kind}: unreadable object ({exc})") from None


def _customer(kind: str, obj: dict[str, Any], created: str) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    return {
        "type": kind,
        "customer_id": _text(obj, "id"),
        "effective_at": _instant(obj["created"]) if kind == "customer.created" else created,
        "attributes": {str(k): str(v) for k, v in metadata.items()},
    }


def _subscription(
    kind: str, sub: dict[str, Any], data: dict[str, Any], created: str
) -> dict[str, Any]:
    ids = {"subscription_id": _text(sub, "id"), "customer_id": _customer_id(sub["customer"])}
    status = sub.get("status")
    if kind == "customer.subscription.deleted" or status in _ENDED:
        ended = sub.get("ended_at") or sub.get("canceled_at")
        return {"type": "subscription.cancelled", **ids,
                "effective_at": _instant(ended) if ended else created}
    if kind == "customer.subscription.paused" or status == "paused":
        return {"type": "subscription.cancelled", **ids, "effective_at": created}
    terms = _terms(sub, created)
    if kind == "customer.subscription.created":
        return {"type": "subscription.started", **ids, **terms,
                "effective_at": _instant(sub["start_date"])}
    previous = (data.get("previous_attributes") or {}).get("status")
    if kind == "customer.subscription.resumed" or previous in ("paused", *_ENDED):
        return {"type": "subscription.reactivated", **ids, **terms, "effective_at": created}
    return {"type": "subscription.changed", **ids, **terms, "effective_at": created}


def _terms(sub: dict[str, Any], at: str) -> dict[str, Any]:
    """plan, amount per interval (after a running discount), currency, interval, quantity."""
    items = sub["items"]["data"]
    if not items:
        raise ValueError("no items")
    prices = [_price(item) for item in items]
    currency = prices[0]["currency"].upper()
    interval, interval_count = prices[0]["interval"], prices[0]["interval_count"]
    if any((p["interval"], p["interval_count"]) != (interval, interval_count) for p in prices):
        raise ValueError("items bill on different intervals")
    total = sum((p["unit"] * int(item.get("quantity") or 1) for p, item in zip(prices, items,
                                                                               strict=True)),
                Decimal(0))
    discounted = _discounted(sub, total, currency, at)
    if sub.get("status") in _UNPAID:
        discounted = Decimal(0)
    single = len(items) == 1 and discounted == total
    amount, quantity = (
        (prices[0]["unit"], int(items[0].get("quantity") or 1)) if single else (discounted, 1)
    )
    return {
        "plan": "+".join(p["id"] for p in prices),
        "amount": _decimal_text(amount),
        "currency": currency,
        "interval": interval,
        "interval_count": interval_count,
        "quantity": quantity,
    }


def _price(item: dict[str, Any]) -> dict[str, Any]:
    """An item's price in major units: `price` (current API) or the legacy `plan`."""
    price = item.get("price") or item.get("plan")
    if not price:
        raise ValueError("an item has neither price nor plan")
    currency = str(price["currency"]).upper()
    if price.get("unit_amount_decimal") is not None:
        minor = Decimal(str(price["unit_amount_decimal"]))
    else:
        minor = Decimal(int(price.get("unit_amount", price.get("amount"))))
    recurring = price.get("recurring") or price  # a legacy plan carries interval itself
    return {
        "id": str(price["id"]),
        "currency": currency,
        "unit": minor / _minor_per_major(currency),
        "interval": recurring["interval"],
        "interval_count": int(recurring.get("interval_count") or 1),
    }


def _discounted(sub: dict[str, Any], total: Decimal, currency: str, at: str) -> Decimal:
    """`total` less the discounts that run forever or have not yet ended at `at`."""
    discounts = [d for d in (sub.get("discounts") or []) if isinstance(d, dict)]
    if isinstance(sub.get("discount"), dict):
        discounts.append(sub["discount"])
    for discount in discounts:
        coupon = discount.get("coupon") or (discount.get("source") or {}).get("coupon") or {}
        if not isinstance(coupon, dict) or not _running(coupon, discount, at):
            continue
        if coupon.get("percent_off") is not None:
            total -= total * Decimal(str(coupon["percent_off"])) / 100
        elif coupon.get("amount_off") is not None:
            total -= Decimal(int(coupon["amount_off"])) / _minor_per_major(currency)
    return max(total, Decimal(0))


def _running(coupon: dict[str, Any], discount: dict[str, Any], at: str) -> bool:
    if coupon.get("duration") == "forever":
        return True
    if coupon.get("duration") == "repeating":
        end = discount.get("end")
        return end is None or _instant(end) > at
    return False  # "once": a one-off, not recurring revenue


def _minor_per_major(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 1
    return 1000 if currency in _THREE_DECIMAL else 100


def _decimal_text(amount: Decimal) -> str:
    """At most 2 places, as the canonical feed requires: fractions of a cent (a percentage
    discount) are rounded half-even, as an invoice would be."""
    return str(amount.quantize(_CENT, rounding=ROUND_HALF_EVEN))


def _customer_id(value: Any) -> str:
    return value["id"] if isinstance(value, dict) else str(value)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("-", f"{key}: a non-empty string is required")
    return value


def _instant(seconds: Any) -> str:
    """A Stripe timestamp (Unix seconds) as fixed-width UTC text."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValueError(f"not a Unix timestamp: {seconds!r}")
    return format_instant(datetime.fromtimestamp(seconds, UTC))


def canonical_lines(
    events: Iterable[tuple[int, bytes, Any]],
) -> Iterator[Line | Rejected | Ignored]:
    """(number, canonical line) per mapped Stripe event, its rejection, or `Ignored` for
    an event of a type not mapped."""
    for number, raw, event in events:
        try:
            if event is None:
                raise InvalidEvent("-", "invalid JSON")
            if not isinstance(event, dict):
                raise InvalidEvent("-", "a Stripe event must be a JSON object")
            canonical = canonical_event(event)
        except InvalidEvent as bad:
            yield Rejected(number, bad.event_id, bad.reason, raw)
            continue
        if canonical is None:
            yield Ignored(number)
        else:
            yield number, orjson.dumps(canonical)


def read_events(data: Iterable[bytes]) -> Iterator[tuple[int, bytes, Any]]:
    """Stripe Event objects from a JSON array (a list of events, e.g. an Events API
    backfill) or JSON Lines: (number from 1, raw bytes, decoded value or None if the JSON
    is invalid). JSON Lines are streamed; an array is read whole."""
    lines = iter(data)
    first = next(lines, b"")
    if first.lstrip().startswith(b"["):
        whole = first + b"".join(lines)
        try:
            events = orjson.loads(whole)
        except orjson.JSONDecodeError:
            yield 1, whole[:200], None
            return
        for number, event in enumerate(events, start=1):
            yield number, orjson.dumps(event), event
        return
    for number, line in enumerate(chain([first], lines), start=1):
        raw = line.rstrip(b"\r\n")
        if raw.strip():
            try:
                yield number, raw, orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield number, raw, None


# -- the webhook's signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
# each v1 an HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint's secret.

def verify(header: str | None, body: bytes, secret: str, now: int | None = None) -> None:
    """Raise `SignatureError` unless one v1 signature matches and the timestamp is fresh."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in pairs if key.strip() == "t"]
    signatures = [value.strip() for key, value in pairs if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        raise SignatureError("malformed Stripe-Signature header")
    stamp = stamps[0].strip()
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Every candidate is compared, in constant time, whatever matched before.
    matched = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    if not any(matched):
        raise SignatureError("no v1 signature matches")
    if abs((int(time.time()) if now is None else now) - int(stamp)) > TOLERANCE:
        raise SignatureError(f"timestamp outside the {TOLERANCE} s tolerance")


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A valid header, as Stripe would send it (for tests and local tooling)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


# -- the source: the mapping, the signature and exports behind the one interface ----------

@dataclass(frozen=True)
class StripeSource:
    """Stripe, through its webhook (one signed Event object per delivery) or an export of
    Event objects (a backfill): both go through the same mapping, so importing what the
    webhook already delivered stores nothing twice."""

    secret: str | None = field(default=None, repr=False)  # the endpoint's signing secret
    name = "stripe"

    def parse(self, data: Iterable[bytes]) -> Iterator[Line | Rejected | Ignored]:
        """An export: a JSON array of Event objects (e.g. from the Events API), numbered
        by position, or JSON Lines, numbered by line."""
        return canonical_lines(read_events(data))

    def delivery(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """One webhook delivery, checked against `Stripe-Signature` before it is read. An
        event of a type not mapped (or a body that is no object) is ignored; the raw body
        and its signature are kept with the event, so an auditor can check the HMAC later."""
        signature = header(headers, "stripe-signature")
        if self.secret is None:
            raise SignatureError("no webhook signing secret is configured")
        verify(signature, body, self.secret)
        try:
            event = orjson.loads(body)
            canonical = canonical_event(event) if isinstance(event, dict) else None
        except orjson.JSONDecodeError:
            raise RefusedDelivery("invalid JSON") from None
        except InvalidEvent as exc:  # an object the mapping cannot read
            raise RefusedDelivery(f"{exc.event_id}: {exc.reason}") from None
        if canonical is None:
            return Delivery([], ignored=True)
        canonical[DELIVERY] = {"raw_body": body.decode(), "stripe_signature": signature}
        return Delivery([orjson.dumps(canonical)])
