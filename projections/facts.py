"""`Fact`: a stored canonical event as the projections read it, decoded straight from the
stored state (the hot path of a replay: orjson, no domain-event objects)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from ledger.instants import utc_text
from ledger.kinds import SUBSCRIPTION_TYPES, UNOWNED, VOID


class Fact(NamedTuple):
    position: int
    recorded_at: str  # fixed-width UTC text, like effective_at
    event_id: str
    type: str
    effective_at: str | None  # fixed-width UTC text; None for every void (see decode_fact)
    customer_id: str | None
    subscription_id: str | None
    payload: dict[str, Any]

    @property
    def voids(self) -> str | None:
        return self.payload["voids"] if self.type == VOID else None


def decode_fact(position: int, state: bytes) -> Fact | None:
    """The fact in a stored event's state, or None for the ledger's own settings events."""
    data = orjson.loads(state)
    event_id = data.get("event_id")
    if event_id is None:
        return None
    payload, type_ = data["payload"], data["type"]
    return _new(Fact, (  # the tuple's own constructor: a replay makes one per event
        position,
        utc_text(data["timestamp"]["_data_"]),
        event_id,
        type_,
        # A void takes effect when it is recorded, at every effective instant: its own
        # `effective_at`, if it carries one, is informative only (contract v1.1).
        None if type_ == VOID else data["effective_at"],
        None if type_ in UNOWNED else payload["customer_id"],  # only its type's own fields
        payload["subscription_id"] if type_ in SUBSCRIPTION_TYPES else None,
        payload,
    ))


_new = tuple.__new__


def by_customer_stream(rows: Iterable[tuple[str, int, bytes]]) -> Iterator[tuple[str, list[Fact]]]:
    """Each customer's facts from (customer, position, state) rows grouped by customer."""
    for customer, group in groupby(rows, key=itemgetter(0)):
        yield customer, [f for _, position, state in group if (f := decode_fact(position, state))]
