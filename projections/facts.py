"""`Fact`: a stored canonical event as the projections read it, decoded straight from the
stored state (the hot path of a replay: orjson, no domain-event objects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import orjson

from ledger.instants import format_instant


class Fact(NamedTuple):
    position: int
    recorded_at: str  # fixed-width UTC text, like effective_at
    event_id: str
    type: str
    effective_at: str | None  # fixed-width UTC text
    customer_id: str | None
    subscription_id: str | None
    payload: dict[str, Any]

    @property
    def voids(self) -> str | None:
        return self.payload["voids"] if self.type == "event.voided" else None


def decode_fact(position: int, state: bytes) -> Fact | None:
    """The fact in a stored event's state, or None for the ledger's own settings events."""
    data = orjson.loads(state)
    event_id = data.get("event_id")
    if event_id is None:
        return None
    payload = data["payload"]
    return Fact(
        position,
        _utc_text(data["timestamp"]["_data_"]),
        event_id,
        data["type"],
        data["effective_at"],
        payload.get("customer_id"),
        payload.get("subscription_id"),
        payload,
    )


def _utc_text(iso: str) -> str:
    """eventsourcing's `isoformat()` of a UTC timestamp, as fixed-width UTC text."""
    if len(iso) == 32 and iso.endswith("+00:00"):  # the usual case, without parsing
        return iso[:26] + "Z"
    return format_instant(datetime.fromisoformat(iso))
