"""Small helpers to write canonical events in tests."""

from __future__ import annotations

from typing import Any

import orjson

from projections.facts import Fact
from projections.fold import CustomerHistory, fold, fold_customer


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


def at(day: str) -> str:
    return f"{day}T00:00:00.000000Z"


class Feed:
    """Facts (as the projections read stored events) in recorded order: each gets the
    next position and a recording instant."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []

    def add(self, type: str, effective: str | None, customer: str | None = "c1",
            sub: str | None = "s1", recorded: str = "2030-01-01", **payload: Any) -> str:
        position = len(self.facts) + 1
        event_id = payload.pop("event_id", f"e{position}")
        body = {"customer_id": customer, "subscription_id": sub, **payload}
        self.facts.append(Fact(position, at(recorded), event_id, type,
                               effective and at(effective), customer, sub, body))
        return event_id

    def start(self, effective: str, amount: str = "100.00", **kw: Any) -> str:
        kw.setdefault("interval", "month")
        return self.add("subscription.started", effective, amount=amount, currency="USD",
                        plan="p", **kw)

    def history(self, customer: str = "c1", known_at: str | None = None) -> CustomerHistory:
        return fold(self.facts, known_at).get(customer) or fold_customer([])
