"""Ingest: validate a stream of canonical records and append them, a batch at a time.

Each batch is decided against what the store already holds (one index look-up per batch)
and appended in one transaction together with its index rows. If another writer got
there first, the transaction fails on a key and the batch is decided again from fresh
state, so concurrent ingests of overlapping feeds store every event exactly once.
Outcomes are data (`Rejected`, `IngestSummary`), reported once their batch has committed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any
from uuid import UUID

from eventsourcing.application import LRUCache
from eventsourcing.persistence import IntegrityError

from ledger.aggregates import (
    Customer,
    Subscription,
    customer_uuid,
    subscription_uuid,
)
from ledger.batches import batched
from ledger.events import (
    EventVoided,
    InvalidEvent,
    SubscriptionTerms,
    content_hash,
    decode_line,
    parse_event,
)
from ledger.store import KeyRow, LedgerApplication

BATCH_SIZE = 2000
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Rejected:
    line: int
    event_id: str
    reason: str
    raw: bytes

    def __str__(self) -> str:
        return f"line {self.line}: {self.event_id}: {self.reason}"


@dataclass
class IngestSummary:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    lines: int = 0

    def add(self, other: IngestSummary) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.lines += other.lines


@dataclass(frozen=True)
class _Candidate:
    line: int
    raw: bytes
    event: Any
    payload: dict[str, Any]
    sha: str


@dataclass
class _Batch:
    """The decisions for one batch, applied to aggregates that are not yet saved."""

    streams: dict[UUID, Any]
    keys: dict[tuple[UUID, int], tuple] = field(default_factory=dict)
    recorded: dict[str, tuple[str, str, UUID, str | None, str | None]] = field(
        default_factory=dict
    )
    voided: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: int = 0


class Ingestor:
    """Appends canonical records to one ledger; keeps a bounded cache of aggregates."""

    def __init__(
        self,
        app: LedgerApplication,
        *,
        batch_size: int = BATCH_SIZE,
        cache_size: int = 50_000,
    ) -> None:
        self.app = app
        self.recorder = app.ledger_recorder
        self.currency = app.reporting_currency()
        self.batch_size = batch_size
        self.cache: LRUCache[UUID, Any] = LRUCache(maxsize=cache_size)

    def ingest(
        self,
        lines: Iterable[tuple[int, bytes]],
        on_reject: Callable[[Rejected], None] = lambda r: None,
        on_batch: Callable[[IngestSummary], None] = lambda s: None,
    ) -> IngestSummary:
        """Record numbered raw lines; blank lines are skipped, bad ones reported."""
        total = IngestSummary()
        for chunk in batched(lines, self.batch_size):
            summary = self.ingest_batch(chunk, on_reject)
            total.add(summary)
            on_batch(summary)
        return total

    def ingest_batch(
        self, chunk: list[tuple[int, bytes]], on_reject: Callable[[Rejected], None]
    ) -> IngestSummary:
        summary = IngestSummary(lines=len(chunk))
        candidates: list[_Candidate] = []
        rejected: list[Rejected] = []
        for number, raw in chunk:
            if not raw.strip():
                continue
            try:
                payload = decode_line(raw)
                event = parse_event(payload)
            except InvalidEvent as bad:
                rejected.append(Rejected(number, bad.event_id, bad.reason, raw))
                continue
            candidates.append(_Candidate(number, raw, event, payload, content_hash(payload)))
        batch = self._record(candidates)
        rejected.extend(batch.rejected)
        for reject in sorted(rejected, key=lambda r: r.line):
            on_reject(reject)
        summary.accepted = len(batch.keys)
        summary.duplicates = batch.duplicates
        summary.rejected = len(rejected)
        return summary

    def _record(self, candidates: list[_Candidate]) -> _Batch:
        for _ in range(MAX_ATTEMPTS):
            batch = self._decide(candidates)
            if not batch.keys:
                return batch
            # Saved as events in feed order, so positions follow the feed within a batch.
            order = {key: index for index, key in enumerate(batch.keys)}
            pending = [e for stream in batch.streams.values() for e in stream.collect_events()]
            pending.sort(key=lambda e: order[(e.originator_id, e.originator_version)])
            try:
                self.app.events.put(pending, keys=batch.keys)
            except IntegrityError:
                for stream_id in batch.streams:  # another writer moved on: reload them
                    self._evict(stream_id)
                continue
            for stream_id, stream in batch.streams.items():
                self.cache.put(stream_id, stream)
            return batch
        raise RuntimeError("gave up after repeated write conflicts with other writers")

    def _evict(self, stream_id: UUID) -> None:
        with suppress(KeyError):
            self.cache.get(stream_id, evict=True)

    def _decide(self, candidates: list[_Candidate]) -> _Batch:
        event_ids = {c.event.event_id for c in candidates}
        targets = {c.event.voids for c in candidates if isinstance(c.event, EventVoided)}
        known = {k.event_id: k for k in self.recorder.select_keys("event_id", event_ids | targets)}
        voided = {k.voids: k.event_id for k in self.recorder.select_keys("voids", targets)}
        batch = _Batch(streams=self._load(candidates, known))
        batch.voided.update(voided)
        for candidate in candidates:
            try:
                self._apply(candidate, known.get(candidate.event.event_id), known, batch)
            except InvalidEvent as bad:
                batch.rejected.append(
                    Rejected(candidate.line, candidate.event.event_id, bad.reason, candidate.raw)
                )
        return batch

    def _apply(
        self, c: _Candidate, stored: KeyRow | None, known: dict[str, KeyRow], batch: _Batch
    ) -> None:
        event = c.event
        previous = stored.content_sha256 if stored else None
        if previous is None and event.event_id in batch.recorded:
            previous = batch.recorded[event.event_id][0]
        if previous is not None:
            if previous != c.sha:
                raise InvalidEvent(event.event_id, "conflict: event_id already recorded "
                                   "with different content")
            batch.duplicates += 1
            return
        entry = {
            "event_id": event.event_id,
            "type": event.type,
            "effective_at": event.effective_at,
            "payload": c.payload,
        }
        if isinstance(event, EventVoided):
            stream, customer_id, subscription_id = self._void(event, known, batch)
            stream.record(**entry)
        elif event.type.startswith("customer."):
            customer_id, subscription_id = event.customer_id, None
            stream = batch.streams.get(customer_uuid(customer_id))
            if stream is None:
                stream = Customer.open(customer_id, **entry)
                batch.streams[stream.id] = stream
            else:
                stream.record(**entry)
        else:
            customer_id, subscription_id = event.customer_id, event.subscription_id
            currency = event.currency if isinstance(event, SubscriptionTerms) else None
            if currency is not None and currency != self.currency:
                raise InvalidEvent(event.event_id, f"currency: {event.currency} is not this "
                                   f"ledger's reporting currency {self.currency}")
            stream = batch.streams.get(subscription_uuid(subscription_id))
            if stream is None:
                stream = Subscription.open(customer_id, subscription_id, **entry)
                batch.streams[stream.id] = stream
            elif stream.customer_id != customer_id:
                raise InvalidEvent(event.event_id, f"customer_id: subscription "
                                   f"{subscription_id} belongs to customer {stream.customer_id}")
            else:
                stream.record(**entry)
        voids = event.voids if isinstance(event, EventVoided) else None
        batch.keys[(stream.id, stream.version)] = (
            event.event_id, c.sha, event.type, customer_id, subscription_id, voids
        )
        batch.recorded[event.event_id] = (c.sha, event.type, stream.id, customer_id,
                                          subscription_id)
        if voids:
            batch.voided[voids] = event.event_id

    def _void(
        self, event: EventVoided, known: dict[str, KeyRow], batch: _Batch
    ) -> tuple[Any, str | None, str | None]:
        target = event.voids
        if target in batch.recorded:
            _, kind, stream_id, customer_id, subscription_id = batch.recorded[target]
        elif target in known:
            row = known[target]
            kind, stream_id = row.type, row.originator_id
            customer_id, subscription_id = row.customer_id, row.subscription_id
        else:
            raise InvalidEvent(event.event_id, f"voids: the ledger holds no event {target!r}")
        if kind == "event.voided":
            raise InvalidEvent(event.event_id, f"voids: {target!r} is itself a void")
        if target in batch.voided:
            raise InvalidEvent(
                event.event_id, f"voids: {target!r} is already voided by {batch.voided[target]!r}"
            )
        stream = batch.streams.get(stream_id)
        assert stream is not None, "an indexed event always has its stream"
        return stream, customer_id, subscription_id

    def _load(self, candidates: list[_Candidate], known: dict[str, KeyRow]) -> dict[UUID, Any]:
        """The aggregates this batch touches that exist, from the cache or one query."""
        wanted: set[UUID] = set()
        for c in candidates:
            event = c.event
            if isinstance(event, EventVoided):
                if event.voids in known:
                    wanted.add(known[event.voids].originator_id)
            elif event.type.startswith("customer."):
                wanted.add(customer_uuid(event.customer_id))
            else:
                wanted.add(subscription_uuid(event.subscription_id))
        streams: dict[UUID, Any] = {}
        missing = []
        for stream_id in wanted:
            try:
                streams[stream_id] = self.cache.get(stream_id)
            except KeyError:
                missing.append(stream_id)
        to_domain = self.app.mapper.to_domain_event
        for stream_id, stored in groupby(
            self.recorder.select_streams(sorted(missing)), key=lambda s: s.originator_id
        ):
            events = [to_domain(s) for s in stored]
            streams[stream_id] = functools.reduce(lambda a, e: e.mutate(a), events, None)
        return streams


def numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Feed lines numbered from 1, without their line endings."""
    for number, line in enumerate(stream, start=1):
        yield number, line.rstrip(b"\r\n")
