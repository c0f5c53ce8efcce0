"""Aggregates: the consistency boundaries the ledger enforces when it records an event.

Each canonical event is stored as exactly one domain event of the aggregate it is about:
a `Subscription`, a `Customer`, or (for a void) the aggregate of the event it voids. The
first event an aggregate receives opens it, whatever its canonical type, because billing
systems deliver out of order and the contract says order is never a reason to refuse.

Aggregate ids are uuid5 of the source ids, so every writer agrees on them without a
lookup and two writers appending the same version collide in the store's primary key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

_NS = uuid5(NAMESPACE_URL, "https://revledger.dev/ids")
LEDGER_ID = uuid5(_NS, "ledger")


@lru_cache(maxsize=65536)
def subscription_uuid(subscription_id: str) -> UUID:
    return uuid5(_NS, "subscription:" + subscription_id)


@lru_cache(maxsize=65536)
def customer_uuid(customer_id: str) -> UUID:
    return uuid5(_NS, "customer:" + customer_id)


class Recorded(Aggregate.Event):
    """One canonical event as the ledger recorded it.

    `timestamp` (set by eventsourcing when the event is triggered) is the instant the
    ledger recorded it: the system time that `--known-at` filters on.
    """

    event_id: str
    type: str
    effective_at: str | None  # fixed-width UTC text; None only for a void without one
    payload: dict[str, Any]

    def apply(self, aggregate: Any) -> None:
        aggregate.count += 1


class _Stream(Aggregate):
    """An aggregate whose history is a sequence of canonical events."""

    class Opened(Aggregate.Created):
        key: str
        event_id: str
        type: str
        effective_at: str | None
        payload: dict[str, Any]

    def __init__(self, key: str, **_: Any) -> None:
        self.key = key
        self.count = 1

    def record(self, event_id: str, type: str, effective_at: str | None, payload: dict) -> None:
        self.trigger_event(
            Recorded, event_id=event_id, type=type, effective_at=effective_at, payload=payload
        )


class Subscription(_Stream):
    """One subscription; its customer is fixed by the first event it receives."""

    class Opened(_Stream.Opened):
        customer_id: str

    def __init__(self, key: str, customer_id: str, **_: Any) -> None:
        super().__init__(key)
        self.customer_id = customer_id

    @classmethod
    def open(cls, customer_id: str, subscription_id: str, **entry: Any) -> Subscription:
        return cls._create(
            cls.Opened,
            id=subscription_uuid(subscription_id),
            key=subscription_id,
            customer_id=customer_id,
            **entry,
        )


class Customer(_Stream):
    """One customer's own events (its attributes); its subscriptions live apart."""

    @classmethod
    def open(cls, customer_id: str, **entry: Any) -> Customer:
        return cls._create(cls.Opened, id=customer_uuid(customer_id), key=customer_id, **entry)


class Ledger(Aggregate):
    """The ledger's own settings: v1 has one reporting currency, fixed at creation."""

    class Opened(Aggregate.Created):
        currency: str

    def __init__(self, currency: str) -> None:
        self.currency = currency

    @classmethod
    def open(cls, currency: str) -> Ledger:
        return cls._create(cls.Opened, id=LEDGER_ID, currency=currency)
