"""Ingest: validate a stream of canonical records and append them, a batch at a time.

Lines are checked by `ledger.feed` (in a second process for a long feed). Each batch is
decided against what the store already holds (one index look-up per batch) and appended
in one transaction with its index rows and chain links. If another writer got there
first, the transaction fails on a key (or on the chain's order) and the batch is decided
again from fresh state, so concurrent ingests of overlapping feeds store every event
exactly once. Outcomes are data (`Rejected`, `Outcome`, `IngestSummary`), reported once
their batch has committed.

A batch is written while the next one is decided (`ledger.pipeline`), by a writer that
suits the store (`ledger.writers`). `Ingestor` is the pipeline's stage for one ledger:
its public methods are what the pipeline drives, and what a test may override.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from ledger.aggregates import (
    Customer,
    Recorded,
    Subscription,
    customer_uuid,
    stream_event,
    subscription_uuid,
)
from ledger.application import LedgerApplication
from ledger.feed import Checked, Rejected, checked_batches
from ledger.instants import format_instant, parse_instant
from ledger.memory import collector_paused
from ledger.pipeline import TURN_BATCHES, Work, Writer, run
from ledger.queries import KeyRow
from ledger.rules import Outcome
from ledger.workers import WorkerDied, second_core
from ledger.writers import Here, InProcess, InThread

BATCH_SIZE = 5000
MAX_ATTEMPTS = 20


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


@dataclass
class _Head:
    """What a decision needs of a stream: its id, version and customer."""

    stream_id: UUID
    version: int
    customer_id: str | None


class _Heads(dict[str, _Head]):
    """Stream heads as the last batches left them, at most `size`: when full, the older
    half goes. A head not here costs a look-up in the store's index (one query for a
    batch's misses), never a wrong decision. A plain dict keeps a hit as cheap as a dict
    look-up, which eventsourcing's thread-safe LRU cache is not (5% of deciding)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def update(self, heads: dict[str, _Head]) -> None:  # type: ignore[override]
        excess = len(self) + len(heads) - self.size
        if excess > 0:
            for key in list(islice(self, max(excess, len(self) // 2))):
                del self[key]
            if len(heads) > self.size:
                heads = dict(islice(heads.items(), len(heads) - self.size, None))
        super().update(heads)


Recording = tuple[str, str, str, str | None, str | None]  # sha, type, stream, customer, sub


@dataclass
class _Batch:
    """The decisions for one batch: new domain events, in feed order, not yet saved.

    Streams are keyed by text (`s:` + subscription id, `c:` + customer id), which hashes
    much faster than a UUID."""

    heads: dict[str, _Head]
    timestamp: datetime
    events: list[Any] = field(default_factory=list)
    keys: list[tuple] = field(default_factory=list)  # the rest of each event's index row
    recorded: dict[str, Recording] = field(default_factory=dict)  # its events, by event_id
    voided: dict[str, str] = field(default_factory=dict)  # target -> void: its own, the store's
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: list[Checked] = field(default_factory=list)
    accepted: list[Checked] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)  # the events, encoded

    def __len__(self) -> int:
        return len(self.events)


def _outcomes(batch: _Batch, rejected: list[Rejected]) -> Iterator[Outcome]:
    for c in batch.accepted:
        yield Outcome(c.line, c.event_id, "accepted")
    for c in batch.duplicates:
        yield Outcome(c.line, c.event_id, "duplicate")
    for r in rejected:
        status = "conflict" if r.reason.startswith("conflict:") else "rejected"
        yield Outcome(r.line, r.event_id, status, r.reason)


def _held(key: str, own: dict[str, Any], pending: dict[str, Any] | None) -> Any:
    """What this batch, or else the one being written, holds under `key`. Only the pending
    batch's own: the one before it has landed, and is read from the store."""
    found = own.get(key)
    if found is None and pending:
        found = pending.get(key)
    return found


def _stream_key(type_: str, customer_id: str | None, subscription_id: str | None) -> str:
    if subscription_id is not None:
        return "s:" + subscription_id
    assert customer_id is not None and type_ != "event.voided"
    return "c:" + customer_id


class Ingestor:
    """Appends canonical records to one ledger; keeps a bounded cache of stream heads.

    `turn_batches` is how many batches a writers' turn lasts; `writer`, if given, makes
    the writer of a feed (told whether it has several batches) instead of `writer()`."""

    def __init__(
        self,
        app: LedgerApplication,
        *,
        batch_size: int = BATCH_SIZE,
        cache_size: int = 200_000,
        parallel: bool | None = None,
        turn_batches: int = TURN_BATCHES,
        writer: Callable[[bool], Writer[_Batch]] | None = None,
    ) -> None:
        self.app = app
        self.recorder = app.ledger_recorder
        self.currency = app.reporting_currency()
        self.batch_size = batch_size
        self.parallel = second_core() if parallel is None else parallel  # checking, writing
        self.turn_batches = turn_batches
        self.make_writer = writer or self.writer
        self.cache = _Heads(cache_size)
        self.floor = self._head_instant()

    def _head_instant(self) -> datetime | None:
        """When the ledger's last event was recorded: a batch must be stamped later."""
        head = self.recorder.chain_head()
        return parse_instant(head.recorded_at) if head else None

    def _now(self) -> datetime:
        now = Recorded.create_timestamp()
        if self.floor is not None and now <= self.floor:  # the clock went back
            return self.floor + timedelta(microseconds=1)
        return now

    def ingest(
        self,
        lines: Iterable[tuple[int, bytes]],
        on_reject: Callable[[Rejected], None] = lambda r: None,
        on_batch: Callable[[IngestSummary], None] = lambda s: None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> IngestSummary:
        """Record numbered raw lines; blank lines are skipped, bad ones reported.
        `on_outcome`, if given, hears of every record once its batch has committed."""
        total = IngestSummary()

        def report(work: Work[_Batch]) -> None:
            summary = _report(work, on_reject, on_outcome)
            total.add(summary)
            on_batch(summary)

        # closing: an error stops the checking process and removes its spool at once,
        # whoever keeps the error (and with it this frame) afterwards.
        with collector_paused(), closing(
            checked_batches(lines, self.batch_size, parallel=self.parallel)
        ) as batches:
            try:
                run(batches, self, self.make_writer, report, turn_batches=self.turn_batches)
            except BrokenExecutor:
                raise WorkerDied("a process checking or writing this feed died") from None
        return total

    # -- the pipeline's stage ---------------------------------------------------------------

    def record(self, candidates: list[Checked]) -> _Batch:
        """Decide and write a batch at once, again while other writers got there first;
        in the writers' turn."""
        for _ in range(MAX_ATTEMPTS):
            batch = self.decide(candidates)
            if not batch.events:
                return batch
            try:
                self.write(batch)
            except IntegrityError:
                self.forget()
                continue
            self.expect(batch)
            return batch
        raise OperationalError("gave up after repeated write conflicts with other writers")

    def expect(self, batch: _Batch) -> None:
        """Take a batch's streams and time as the store's, before it has landed: the next
        batch is decided on them. (`forget` if it does not land.)"""
        self.floor = batch.timestamp
        self.cache.update(batch.heads)

    def forget(self) -> None:
        """Another writer moved on: what is cached of the store may be stale."""
        self.cache = _Heads(self.cache.size)
        self.floor = self._head_instant()

    def turn(self) -> AbstractContextManager[None]:
        return self.app.writing()

    def mark(self) -> int | None:
        return self.recorder.max_notification_id()

    def write(self, batch: _Batch) -> None:
        """Append a batch here, now."""
        self.app.recorder.insert_events(batch.stored, keys=batch.keys,
                                        recorded_at=format_instant(batch.timestamp))

    def writer(self, several: bool) -> Writer[_Batch]:
        """Where this ledger's batches are written. A process of its own pays for a feed
        of several batches only (a webhook's one event never forks)."""
        if self.recorder.writes_in_thread:
            return InThread(self.write)
        if not (self.parallel and several):
            return Here(self.write)
        return InProcess(self.app.url)

    # -- deciding (the stage's `decide`) ----------------------------------------------------

    def decide(self, candidates: list[Checked], pending: _Batch | None = None) -> _Batch:
        """The batch's decisions, taking `pending` (a batch being written) as recorded."""
        event_ids = {c.event_id for c in candidates}
        targets = {c.voids for c in candidates if c.voids is not None}
        # One statement: what is recorded and what is voided, as of the same moment.
        rows = self.recorder.select_keys_where({"event_id": event_ids | targets,
                                                "voids": targets})
        known = {k.event_id: k for k in rows if k.event_id in event_ids or k.event_id in targets}
        batch = _Batch(self._heads(candidates, known, pending), self._now())
        batch.voided.update({k.voids: k.event_id for k in rows if k.voids in targets})
        for candidate in candidates:
            try:
                self._apply(candidate, known, batch, pending)
            except ValueError as bad:
                batch.rejected.append(
                    Rejected(candidate.line, candidate.event_id, str(bad), candidate.raw)
                )
        batch.stored = [self.app.mapper.to_stored_event(e) for e in batch.events]
        return batch

    def _apply(
        self, c: Checked, known: dict[str, KeyRow], batch: _Batch, pending: _Batch | None
    ) -> None:
        stored = known.get(c.event_id)
        previous = stored.content_sha256 if stored else None
        if previous is None:
            held = _held(c.event_id, batch.recorded, pending and pending.recorded)
            previous = held[0] if held else None
        if previous is not None:
            if previous != c.sha:
                raise ValueError("conflict: event_id already recorded with different content")
            batch.duplicates.append(c)
            return
        customer_id, subscription_id = c.customer_id, c.subscription_id
        if c.voids is not None:
            key, customer_id, subscription_id = self._void(c.voids, known, batch, pending)
        else:
            key = _stream_key(c.type, customer_id, subscription_id)
            if c.currency is not None and c.currency != self.currency:
                raise ValueError(f"currency: {c.currency} is not this ledger's reporting "
                                 f"currency {self.currency}")
        head = batch.heads.get(key)
        if head is None:
            stream_id = (subscription_uuid(subscription_id) if subscription_id is not None
                         else customer_uuid(customer_id))  # type: ignore[arg-type]
            head = batch.heads[key] = _Head(stream_id, 0, customer_id)
        elif subscription_id is not None and head.customer_id != customer_id:
            raise ValueError(f"customer_id: subscription {subscription_id} belongs to "
                             f"customer {head.customer_id}")
        head.version += 1
        batch.events.append(stream_event(
            Customer if subscription_id is None else Subscription,
            head.stream_id, head.version, batch.timestamp, key=key[2:],
            customer_id=customer_id, event_id=c.event_id, type=c.type,
            effective_at=c.effective_at, payload=orjson.Fragment(c.raw),
        ))
        batch.keys.append((c.event_id, c.sha, c.type, customer_id, subscription_id, c.voids))
        batch.recorded[c.event_id] = (c.sha, c.type, key, customer_id, subscription_id)
        batch.accepted.append(c)
        if c.voids is not None:
            batch.voided[c.voids] = c.event_id

    def _void(
        self, target: str, known: dict[str, KeyRow], batch: _Batch, pending: _Batch | None
    ) -> tuple[str, str | None, str | None]:
        """The stream, customer and subscription of the event a void names."""
        if (held := _held(target, batch.recorded, pending and pending.recorded)) is not None:
            _, kind, key, customer_id, subscription_id = held
        elif target in known:
            row = known[target]
            kind, customer_id, subscription_id = row.type, row.customer_id, row.subscription_id
            key = ""  # a void's stream is never needed: a void cannot be voided
            if kind != "event.voided":
                key = _stream_key(kind, customer_id, subscription_id)
        else:
            raise ValueError(f"voids: the ledger holds no event {target!r}")
        if kind == "event.voided":
            raise ValueError(f"voids: {target!r} is itself a void")
        if (void := _held(target, batch.voided, pending and pending.voided)) is not None:
            raise ValueError(f"voids: {target!r} is already voided by {void!r}")
        assert key in batch.heads, "an indexed event always has its stream"
        return key, customer_id, subscription_id

    def _heads(
        self, candidates: list[Checked], known: dict[str, KeyRow], pending: _Batch | None
    ) -> dict[str, _Head]:
        """The heads of the streams this batch touches: as `pending` leaves them, else from
        the cache, else from one query."""
        recorded = pending.recorded if pending else {}
        wanted: set[str] = set()
        for c in candidates:
            if c.voids is None:
                wanted.add(_stream_key(c.type, c.customer_id, c.subscription_id))
            elif (row := known.get(c.voids)) is not None:
                if row.type != "event.voided":
                    wanted.add(_stream_key(row.type, row.customer_id, row.subscription_id))
            elif c.voids in recorded:
                wanted.add(recorded[c.voids][2])
        moved = pending.heads if pending else {}
        heads: dict[str, _Head] = {}
        missing: dict[UUID, str] = {}
        for key in wanted:
            head = moved.get(key) or self.cache.get(key)
            if head is None:
                stream_id = (subscription_uuid(key[2:]) if key[0] == "s"
                             else customer_uuid(key[2:]))
                missing[stream_id] = key
                continue
            heads[key] = _Head(head.stream_id, head.version, head.customer_id)
        for stream_id, version, customer_id in self.recorder.select_heads(list(missing)):
            heads[missing[stream_id]] = _Head(stream_id, version, customer_id)
        return heads


def _report(
    work: Work[_Batch],
    on_reject: Callable[[Rejected], None],
    on_outcome: Callable[[Outcome], None] | None,
) -> IngestSummary:
    batch = work.batch
    rejected = [*work.rejected, *batch.rejected]
    for reject in sorted(rejected, key=lambda r: r.line):
        on_reject(reject)
    if on_outcome is not None:
        for outcome in sorted(_outcomes(batch, rejected), key=lambda o: o.line):
            on_outcome(outcome)
    return IngestSummary(
        accepted=len(batch.keys),
        duplicates=len(batch.duplicates),
        rejected=len(rejected),
        lines=work.read,
    )
