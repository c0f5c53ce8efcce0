"""Aggregates: the consistency boundaries the ledger enforces when it records an event.

Each canonical event is stored as exactly one domain event of the aggregate it is about:
a `Subscription`, a `Customer`, a `Rate`, or (for a void) the aggregate of the event it voids. The
first event an aggregate receives opens it, whatever its canonical type, because billing
systems deliver out of order and the contract says order is never a reason to refuse.

Aggregate ids are uuid5 of the source ids, so every writer agrees on them without a
lookup and two writers appending the same version collide in the store's primary key.

Ingest decides a batch of thousands of events at once. All a decision needs of an
aggregate is its version and (for a subscription) its customer, so `stream_event` builds
the domain event `trigger_event` would, without loading the aggregate's history; the
aggregates themselves still reconstitute from the store like any eventsourcing aggregate.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

_NS = uuid5(NAMESPACE_URL, "https://revledger.dev/ids")
LEDGER_ID = uuid5(_NS, "ledger")


@lru_cache(maxsize=65536)
def subscription_uuid(subscription_id: str) -> UUID:
    return uuid5(_NS, "subscription:" + subscription_id)


@lru_cache(maxsize=65536)
def customer_uuid(customer_id: str) -> UUID:
    return uuid5(_NS, "customer:" + customer_id)


@lru_cache(maxsize=65536)
def rate_uuid(event_id: str) -> UUID:
    """An exchange rate's stream (contract v2: it belongs to no customer): its own."""
    return uuid5(_NS, "rate:" + event_id)


class Recorded(Aggregate.Event):
    """One canonical event as the ledger recorded it.

    `timestamp` (set by eventsourcing when the event is triggered) is the instant the
    ledger recorded it: the system time that `--known-at` filters on. Ingest hands over
    `payload` as the checked feed line itself (an `orjson.Fragment`), which the transcoder
    writes as is; it reads back as the dict.
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


class Subscription(_Stream):
    """One subscription; its customer is fixed by the first event it receives."""

    class Opened(_Stream.Opened):
        customer_id: str

    def __init__(self, key: str, customer_id: str, **_: Any) -> None:
        super().__init__(key)
        self.customer_id = customer_id


class Customer(_Stream):
    """One customer's own events (its attributes); its subscriptions live apart."""


class Rate(_Stream):
    """One exchange rate (`fx.rate`), and its void if it gets one."""


_TOPICS = {kind: get_topic(kind) for kind in (Subscription, Customer, Rate)}


def stream_event(
    kind: type[_Stream],
    stream_id: UUID,
    version: int,
    timestamp: datetime,
    *,
    key: str,
    customer_id: str | None,
    **entry: Any,
) -> Aggregate.Event:
    """The event recording `entry` as `version` of a stream: `Opened` for the first."""
    if version > 1:
        return Recorded(
            originator_id=stream_id, originator_version=version, timestamp=timestamp, **entry
        )
    if kind is Subscription:
        entry["customer_id"] = customer_id
    return kind.Opened(
        originator_id=stream_id,
        originator_version=1,
        timestamp=timestamp,
        originator_topic=_TOPICS[kind],
        key=key,
        **entry,
    )


class Ledger(Aggregate):
    """The ledger's own settings: v1 has one reporting currency, fixed at creation."""

    class Opened(Aggregate.Created):
        currency: str

    def __init__(self, currency: str) -> None:
        self.currency = currency

    @classmethod
    def open(cls, currency: str) -> Ledger:
        return cls._create(cls.Opened, id=LEDGER_ID, currency=currency)
