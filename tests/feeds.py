"""Small helpers to write canonical events in tests."""

from __future__ import annotations

from typing import Any

import orjson


def started(
    event_id: str, sub: str, customer: str, at: str, amount: str = "100.00", **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id, "type": "subscription.started", "effective_at": at,
        "customer_id": customer, "subscription_id": sub, "plan": "pro", "amount": amount,
        "currency": "USD", "interval": "month", **extra,
    }


def changed(event_id: str, sub: str, customer: str, at: str, **terms: Any) -> dict[str, Any]:
    return {
        "event_id": event_id, "type": "subscription.changed", "effective_at": at,
        "customer_id": customer, "subscription_id": sub, **terms,
    }


def cancelled(event_id: str, sub: str, customer: str, at: str) -> dict[str, Any]:
    return {
        "event_id": event_id, "type": "subscription.cancelled", "effective_at": at,
        "customer_id": customer, "subscription_id": sub,
    }


def voided(event_id: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "event.voided", "voids": target, **extra}


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)
