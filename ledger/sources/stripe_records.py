"""A Stripe export or delivery as received, before any mapping: the records of an export
(a JSON array, a list object, or JSON Lines), each held to one Stripe event's limits (its
size, its depth), and the id a refused record is named by.

Pure: bytes in, records out. What each record comes to is `ledger.sources.stripe` (the
mapping) and `ledger.sources.stripe_source` (the source interface).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson

from ledger.jsontext import MAX_DEPTH as JSON_DEPTH
from ledger.jsontext import UnreadableJSON, nested_within, read_json, too_deep

# Stripe documents no size limit for an event. The largest it can legitimately send is an
# update of a subscription of 20 items (its documented maximum) with full metadata (50
# keys of 40 characters, values of 500) on the subscription and on each item, price and
# plan, whose previous_attributes hold the items and metadata as they were: 3.5 MB as
# Stripe lays it out. An event is stored twice (the parsed event and the signed raw
# body), so this bounds a stored Stripe event near 9 MiB, where a canonical line stops at
# 128 KiB; a real one is a few KiB.
MAX_EVENT = 4 << 20
# Stripe objects nest about 10 levels (expansions add at most 4); the event is stored one
# level down in its canonical line, whose limit is ledger.jsontext.MAX_DEPTH.
MAX_DEPTH = JSON_DEPTH - 1


@dataclass(frozen=True)
class Record:
    """One record of a Stripe export: its number (line, or position in an array), its raw
    bytes, and the decoded value; for a record that cannot be read (invalid JSON, too deep
    or too large, a key twice in one object), also why (`error`)."""

    number: int
    raw: bytes
    value: Any
    error: str | None = None


def read_records(data: Iterable[bytes]) -> Iterator[Record]:
    """Stripe objects (Events, or Subscriptions) from a JSON array, a list object
    (`{"object": "list", "data": [...]}` as the API and `stripe ... list` print it), or
    JSON Lines. JSON Lines are streamed; an array is read whole, and refused whole if it
    cannot be read (its records have no lines of their own)."""
    lines = iter(data)
    first = next(lines, b"")
    head = first.lstrip()
    if head.startswith(b"[") or (head.startswith(b"{") and not first.rstrip().endswith(b"}")):
        whole = first + b"".join(lines)
        try:  # the array, or the list object and its data, are levels of their own
            values = read_json(whole, MAX_DEPTH + 2)
        except UnreadableJSON as exc:
            yield Record(1, whole[:200], None, _reason(exc))
            return
        if isinstance(values, dict) and values.get("object") == "list":
            values = values.get("data") or []
        if not isinstance(values, list):
            values = [values]
        for number, value in enumerate(values, start=1):
            yield _record(number, orjson.dumps(value), value)
        return
    for number, line in enumerate(chain([first], lines), start=1):
        raw = line.rstrip(b"\r\n")
        if raw.strip():
            try:
                value = read_json(raw, MAX_DEPTH + 2)
            except UnreadableJSON as exc:
                yield Record(number, raw, exc.value, _reason(exc))
                continue
            if isinstance(value, dict) and value.get("object") == "list":
                for item in value.get("data") or []:
                    yield _record(number, orjson.dumps(item), item)
                continue
            yield _record(number, raw, value)


def _record(number: int, raw: bytes, value: Any) -> Record:
    """One Stripe object's record (read, its keys checked), held to one event's limits."""
    if not nested_within(value, MAX_DEPTH):
        return Record(number, raw, value, too_deep(MAX_DEPTH))
    if len(raw) > MAX_EVENT:
        return Record(number, raw, value, too_large(len(raw)))
    return Record(number, raw, value)


def _reason(refused: UnreadableJSON) -> str:
    """Why a record was refused, its depth counted as an event's (the array or list
    object around it are levels of their own, allowed for)."""
    reason = str(refused)
    return too_deep(MAX_DEPTH) if reason == too_deep(MAX_DEPTH + 2) else reason


def too_large(size: int) -> str:
    """The reason a Stripe event over `MAX_EVENT` is refused."""
    return f"Stripe event larger than {MAX_EVENT >> 20} MiB ({size} bytes)"


def stripe_id(value: Any) -> str:
    """The ledger's id for a Stripe object, as far as it can be read ("-" if not)."""
    object_id = value.get("id") if isinstance(value, dict) else None
    return "stripe:" + object_id[:193] if isinstance(object_id, str) and object_id else "-"
