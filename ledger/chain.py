"""The hash chain: tamper evidence over the ledger's total order.

Each stored event gets `chain = SHA-256(previous chain || canonical bytes)`, where the
canonical bytes are the event's position, aggregate id, version, topic and stored state,
each length-prefixed. The state holds everything recorded (payload, effective time,
recording instant), so altering, deleting, inserting or reordering a stored row changes
every chain value from there on. eventsourcing's cipher cannot tell: it authenticates
each row alone.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from uuid import UUID

import orjson

from ledger.instants import utc_text

GENESIS = "0" * 64  # the "previous chain" of the first event


class Link(NamedTuple):
    """One event's row of the chain."""

    position: int
    recorded_at: str  # fixed-width UTC text; never decreases along positions
    chain_sha256: str


def canonical_bytes(
    position: int, originator_id: UUID, originator_version: int, topic: str, state: bytes
) -> bytes:
    topic_bytes = topic.encode()
    return b"".join((
        struct.pack(">qQ", position, len(originator_id.bytes)), originator_id.bytes,
        struct.pack(">qQ", originator_version, len(topic_bytes)), topic_bytes,
        struct.pack(">Q", len(state)), state,
    ))


def link(previous: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + canonical).hexdigest()


def recorded_at(state: bytes) -> str:
    """The recording instant inside a stored event's state (eventsourcing's timestamp)."""
    return utc_text(orjson.loads(state)["timestamp"]["_data_"])


def extend(
    previous: Link | None,
    rows: Iterable[tuple[int, UUID, int, str, bytes, str]],
) -> Iterator[Link]:
    """The links of one transaction's rows (position, id, version, topic, state,
    recorded_at), given the last link stored. They must be recorded strictly after that
    link and in order among themselves, so "known at T" is always a prefix of the chain."""
    chain = previous.chain_sha256 if previous else GENESIS
    head = previous.recorded_at if previous else ""
    last = head
    for position, originator_id, version, topic, state, at in rows:
        if at <= head or at < last:
            raise ValueError(f"recorded at {at}, not after the ledger's head ({last})")
        chain = link(chain, canonical_bytes(position, originator_id, version, topic, state))
        last = at
        yield Link(position, at, chain)
