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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
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


_HEAD = struct.Struct(">qQ16sqQ")  # position, id length, id, version, topic length
_LENGTH = struct.Struct(">Q")


def canonical_bytes(
    position: int, originator_id: bytes, originator_version: int, topic: str, state: bytes
) -> bytes:
    """`originator_id` is the aggregate id's 16 bytes."""
    topic_bytes = topic.encode()
    return b"".join((
        _HEAD.pack(position, 16, originator_id, originator_version, len(topic_bytes)),
        topic_bytes, _LENGTH.pack(len(state)), state,
    ))


def canonical_rows(
    positions: Sequence[int], rows: Sequence[tuple[bytes, int, str, bytes]]
) -> list[bytes]:
    """The canonical bytes of stored events (aggregate id bytes, version, topic, state) at
    these positions: made once per transaction, for both its chain links and its Merkle
    tree's leaves."""
    return [canonical_bytes(p, *row) for p, row in zip(positions, rows, strict=True)]


def link(previous: str, canonical: bytes) -> str:
    return _next(bytes.fromhex(previous), canonical).hex()


def _next(previous: bytes, canonical: bytes) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(canonical)
    return digest.digest()


def recorded_at(state: bytes) -> str:
    """The recording instant inside a stored event's state (eventsourcing's timestamp)."""
    return utc_text(orjson.loads(state)["timestamp"]["_data_"])


def extend(
    previous: Link | None,
    rows: Iterable[tuple[int, bytes, int, str, bytes, str]],
) -> Iterator[Link]:
    """The links of one transaction's rows (position, id bytes, version, topic, state,
    recorded_at), given the last link stored. They must be recorded strictly after that
    link and in order among themselves, so "known at T" is always a prefix of the chain."""
    return chained(previous, (
        (position, canonical_bytes(position, originator_id, version, topic, state), at)
        for position, originator_id, version, topic, state, at in rows
    ))


def chained(previous: Link | None, rows: Iterable[tuple[int, bytes, str]]) -> Iterator[Link]:
    """`extend` for rows whose canonical bytes are made already (position, canonical bytes,
    recorded_at): a writer makes them once for the chain and the Merkle tree's leaves."""
    chain = bytes.fromhex(previous.chain_sha256 if previous else GENESIS)
    head = previous.recorded_at if previous else ""
    last = head
    for position, canonical, at in rows:
        if at <= head or at < last:
            raise ValueError(f"recorded at {at}, not after the ledger's head ({last})")
        chain = _next(chain, canonical)
        last = at
        yield Link(position, at, chain.hex())


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain: how far it held, and the first break if any."""

    events: int
    head: Link | None
    position: int | None = None  # of the first break
    event_id: str | None = None
    problem: str | None = None


def check(rows: Iterable[tuple]) -> ChainReport:
    """Recompute the chain over (position, aggregate id, version, topic, state, link
    position, link recorded_at, link hash) rows in position order."""
    chain, count, head = GENESIS, 0, None
    for position, originator_id, version, topic, state, at_position, at, sha in rows:
        if position is None:
            return ChainReport(count, head, at_position, None,
                               "the event of this chain link is missing (deleted)")
        event_id = _event_id(state)
        if at_position is None:
            return ChainReport(count, head, position, event_id,
                               "no chain link (written around the ledger)")
        uuid = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        expected = link(chain, canonical_bytes(position, uuid.bytes, version, topic, state))
        if expected != sha:
            return ChainReport(count, head, position, event_id,
                               "chain hash differs: this event, or one before it, was "
                               "altered, removed or moved")
        if _recorded_at(state) != at or (head and at < head.recorded_at):
            return ChainReport(count, head, position, event_id,
                               "recording instant differs from its chain link")
        chain, count, head = sha, count + 1, Link(position, at, sha)
    return ChainReport(count, head)


def _event_id(state: bytes) -> str | None:
    try:
        return orjson.loads(state).get("event_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None


def _recorded_at(state: bytes) -> str | None:
    try:
        return recorded_at(state)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
