"""The events as delivered, read plainly: their instants and amounts parsed here (not by
the ledger's parser), which of them count as known at an instant, and whose they are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


@lru_cache(maxsize=1 << 16)  # a pure function of the text; a ledger repeats its instants
def utc(text: str) -> str:
    """An RFC 3339 timestamp as fixed-width UTC text: fractions beyond microseconds are
    cut off, and a leap second (:60) is the last microsecond of its minute."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    if second == 60:
        second, micro = 59, 999999
    moment = datetime(year, month, day, hour, minute, second, micro)
    if m[8]:
        shift = timedelta(hours=int(m[9]), minutes=int(m[10]))
        moment = moment - shift if m[8] == "+" else moment + shift
    return moment.isoformat(timespec="microseconds") + "Z"


@lru_cache(maxsize=1 << 16)
def amount(text: str) -> Fraction:
    whole, _, decimals = text.partition(".")
    return Fraction(int(whole + decimals), 10 ** len(decimals))


class Event(NamedTuple):
    """A recorded event: its place in recorded order, when it was recorded, and the
    canonical record as delivered (raw JSON object)."""

    position: int
    recorded_at: str
    record: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.record["event_id"]

    @property
    def type(self) -> str:
        return self.record["type"]

    @property
    def effective_at(self) -> str:
        return utc(self.record["effective_at"])


def stored_event(position: int, state: bytes) -> Event | None:
    """The event in a stored state, as the ledger wrote it (None for its settings)."""
    data = json.loads(state)
    if "payload" not in data:
        return None
    recorded = datetime.fromisoformat(data["timestamp"]["_data_"]).astimezone(UTC)
    return Event(position, recorded.replace(tzinfo=None).isoformat(timespec="microseconds")
                 + "Z", data["payload"])


def visible(events: Iterable[Event], known_at: str | None = None) -> list[Event]:
    """The events that count: recorded by `known_at`, not voids, not voided by then."""
    seen = [e for e in events if known_at is None or e.recorded_at <= known_at]
    voided = {e.record["voids"] for e in seen if e.type == "event.voided"}
    return [e for e in seen if e.type != "event.voided" and e.event_id not in voided]


def customer_of(events: list[Event]) -> dict[str, str | None]:
    """Each event's customer: its own `customer_id`, or for a void its target's; None for
    an exchange rate (it belongs to no customer) and a void of one."""
    owner = {e.event_id: None if e.type == "fx.rate" else e.record["customer_id"]
             for e in events if e.type != "event.voided"}
    return {e.event_id: owner.get(e.record["voids"], "") if e.type == "event.voided"
            else owner[e.event_id] for e in events}
