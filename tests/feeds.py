"""Small helpers to write canonical events in tests."""

from __future__ import annotations

from typing import Any

import orjson

from projections import reference
from projections.facts import Fact
from projections.fold import CustomerHistory, fold, fold_customer


def stored_reference(app: Any, upto: int | None = None) -> reference.Reference:
    """The reference over a ledger's stored events (up to a position), read as stored."""
    recorder = app.ledger_recorder
    upto = recorder.max_notification_id() or 0 if upto is None else upto
    return reference.Reference(e for p, state in recorder.iter_states(upto)
                               if (e := reference.stored_event(p, state)))


def in_units(r: Any) -> dict[str, Any]:
    """An engine's `Retention` (cents) in the reference's terms (currency units)."""
    return {"customers": r.customers, "nrr": r.nrr, "grr": r.grr,
            "nrr_constant_currency": r.nrr_constant_currency,
            **{k: getattr(r, k) / 100 for k in ("starting_mrr", "ending_mrr", "expansion",
                                                 "contraction", "churn", "fx_impact")}}


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

    def events(self) -> list[reference.Event]:
        """The same events as the reference reads them (records as delivered)."""
        return [reference.Event(f.position, f.recorded_at, {
            "event_id": f.event_id, "type": f.type,
            **({"effective_at": f.effective_at} if f.effective_at else {}),
            **{k: v for k, v in f.payload.items() if v is not None}}) for f in self.facts]

    def reference(self, known_at: str | None = None) -> reference.Reference:
        return reference.Reference(self.events(), known_at)
