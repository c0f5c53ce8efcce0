"""Ingest: validate a stream of canonical records and append them, a batch at a time.

Lines are checked by `ledger.feed` (in a second process for a long feed). Each batch is
decided against what the store already holds (one index look-up per batch) and appended
in one transaction with its index rows and chain links. If another writer got there
first, the transaction fails on a key (or on the chain's order) and the batch is decided
again from fresh state, so concurrent ingests of overlapping feeds store every event
exactly once. Outcomes are data (`Rejected`, `Outcome`, `IngestSummary`), reported once
their batch has committed.

A batch is written while the next one is decided (`_Pipeline`): on PostgreSQL in a thread
(the server does its part while this process decides), on SQLite in a forked process with
its own connection (sqlite3 holds the GIL between rows, so a thread would only take turns
with deciding). Checking, deciding and writing then share the two cores.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain, islice
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
from ledger.queries import KeyRow, rows_of
from ledger.rules import Outcome
from ledger.workers import WorkerDied, forked_pool, second_core

BATCH_SIZE = 5000
MAX_ATTEMPTS = 20
TURN_BATCHES = 4  # batches written in one writers' turn: how long other writers may wait


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


@dataclass
class _Work:
    """A batch of the feed once checked: its decisions, and their write once submitted."""

    read: int
    candidates: list[Checked]
    rejected: list[Rejected]  # by the checks
    batch: _Batch
    written: Future[Any] | None = None


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
    """Appends canonical records to one ledger; keeps a bounded cache of stream heads."""

    def __init__(
        self,
        app: LedgerApplication,
        *,
        batch_size: int = BATCH_SIZE,
        cache_size: int = 200_000,
        parallel: bool | None = None,
    ) -> None:
        self.app = app
        self.recorder = app.ledger_recorder
        self.currency = app.reporting_currency()
        self.batch_size = batch_size
        self.parallel = second_core() if parallel is None else parallel  # checking, writing
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

        def report(work: _Work) -> None:
            summary = _report(work, on_reject, on_outcome)
            total.add(summary)
            on_batch(summary)

        # closing: an error stops the checking process and removes its spool at once,
        # whoever keeps the error (and with it this frame) afterwards.
        with collector_paused(), closing(
            checked_batches(lines, self.batch_size, parallel=self.parallel)
        ) as batches:
            try:
                first = list(islice(batches, 2))  # one batch, or several: see `_writer`
                with _Pipeline(self, report, self._writer(several=len(first) > 1)) as pipeline:
                    for read, results in chain(first, batches):
                        pipeline.push(read, results)
            except BrokenExecutor:
                raise WorkerDied("a process checking or writing this feed died") from None
        return total

    def _record(self, candidates: list[Checked]) -> _Batch:
        """Decide and write a batch at once, again while other writers got there first;
        in the writers' turn."""
        for _ in range(MAX_ATTEMPTS):
            batch = self._decide(candidates)
            if not batch.events:
                return batch
            try:
                self._write(batch)
            except IntegrityError:
                self._forget()
                continue
            self._expect(batch)
            return batch
        raise OperationalError("gave up after repeated write conflicts with other writers")

    def _write(self, batch: _Batch) -> None:
        self.app.recorder.insert_events(batch.stored, keys=batch.keys,
                                        recorded_at=format_instant(batch.timestamp))

    def _writer(self, *, several: bool) -> _Writer:
        """A process of its own pays for a feed of several batches only (a webhook's one
        event never forks)."""
        if self.recorder.writes_in_thread:
            return _InThread(self._write)
        if not (self.parallel and several):
            return _Writer(self._write)
        return _InProcess(self.app.url)

    def _expect(self, batch: _Batch) -> None:
        """Take a batch's streams and time as the store's, before it has landed: the next
        batch is decided on them. (`_forget` if it does not land.)"""
        self.floor = batch.timestamp
        self.cache.update(batch.heads)

    def _forget(self) -> None:
        """Another writer moved on: what is cached of the store may be stale."""
        self.cache = _Heads(self.cache.size)
        self.floor = self._head_instant()

    def _decide(self, candidates: list[Checked], pending: _Batch | None = None) -> _Batch:
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


class _Pipeline:
    """Writes each batch in a thread while the next one is decided, in the writers' turn.

    The next batch is decided as if the one being written had landed: its events count as
    recorded, its streams' heads as moved on. Should it not land (another writer got there
    first), it is decided and written again at once, and the next one decided afresh. The
    turn is handed on every `TURN_BATCHES` batches, between one batch landing and the next
    being written, so other writers are not kept waiting for a whole feed; the next batch
    is decided afresh only if one of them wrote meanwhile.
    """

    def __init__(
        self, ingestor: Ingestor, report: Callable[[_Work], None], writer: _Writer
    ) -> None:
        self.ingestor = ingestor
        self.report = report
        self.writer = writer
        self.turn = ExitStack()
        self.holding = False  # the writers' turn
        self.in_turn = 0  # batches decided in this turn
        self.pending: _Work | None = None  # being written

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.pending is not None:
                if exc[0] is None:
                    self._land()
                else:  # report what has landed all the same; the first error stands
                    with suppress(Exception):
                        self._land()
        finally:
            self.turn.close()
            self.writer.close()

    def push(self, read: int, results: list[Checked | Rejected]) -> None:
        candidates = [r for r in results if isinstance(r, Checked)]
        rejected = [r for r in results if isinstance(r, Rejected)]
        if not self.holding:
            self._take_turn()
        elif self.pending is None and self.in_turn >= TURN_BATCHES:
            self._hand_on()  # nothing decided yet: nothing to decide again
        pending = self.pending.batch if self.pending else None
        work = _Work(read, candidates, rejected, self.ingestor._decide(candidates, pending))
        if self.pending is not None:
            fresh = self._land()
            if self.in_turn >= TURN_BATCHES:
                fresh = self._hand_on() and fresh
            if not fresh:
                work.batch = self.ingestor._decide(candidates)
        if work.batch.events:
            self.ingestor._expect(work.batch)
            work.written = self.writer.submit(work.batch)
            self.pending = work
        else:
            self.report(work)
        self.in_turn += 1

    def _take_turn(self) -> None:
        self.turn.enter_context(self.ingestor.app.writing())
        self.holding, self.in_turn = True, 0

    def _hand_on(self) -> bool:
        """Let waiting writers go, then take the turn again; False if one of them wrote
        (what was decided meanwhile may be stale)."""
        recorder = self.ingestor.recorder
        mark = recorder.max_notification_id()
        self.turn.close()
        self._take_turn()
        if recorder.max_notification_id() == mark:
            return True
        self.ingestor._forget()
        return False

    def _land(self) -> bool:
        """Wait for the batch being written and report it; False if it had to be decided
        and written again."""
        assert self.pending is not None and self.pending.written is not None
        work, self.pending = self.pending, None
        try:
            work.written.result()
            landed = True
        except IntegrityError:
            self.ingestor._forget()
            work.batch = self.ingestor._record(work.candidates)
            landed = False
        self.report(work)
        return landed


class _Writer:
    """Where a batch is written: here, at once (the base), in a thread or in a process."""

    def __init__(self, write: Callable[[_Batch], None]) -> None:
        self.write = write

    def submit(self, batch: _Batch) -> Future[None]:
        future: Future[None] = Future()
        try:
            future.set_result(self.write(batch))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


class _InThread(_Writer):
    """For a store whose writes wait without the GIL (PostgreSQL's server)."""

    def __init__(self, write: Callable[[_Batch], None]) -> None:
        super().__init__(write)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="revledger-writer")

    def submit(self, batch: _Batch) -> Future[None]:
        return self.pool.submit(self.write, batch)

    def close(self) -> None:
        self.pool.shutdown()


class _InProcess(_Writer):
    """For SQLite: a forked process with its own connection writes the batches as rows.
    It starts, and opens the ledger, while the first batch is decided."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = forked_pool()
        self.pool.submit(_open, url)

    def submit(self, batch: _Batch) -> Future[None]:
        # marshal, not pickle: plain tuples of bytes, str and int, to a fork of this very
        # interpreter. Pickle's memo of every object made sending a batch 3 times dearer.
        packed = marshal.dumps((rows_of(batch.stored), batch.keys), 2)
        return self.pool.submit(_insert_rows, self.url, packed, format_instant(batch.timestamp))

    def close(self) -> None:
        self.pool.shutdown()


_writing_apps: dict[str, LedgerApplication] = {}  # of a writer process, by URL


def _open(url: str) -> None:
    """In a writer process: its own connection to the ledger, opened once."""
    if url not in _writing_apps:
        _writing_apps[url] = LedgerApplication(url, create_tables=False)


def _insert_rows(url: str, packed: bytes, recorded_at: str) -> None:
    """In a writer process: append a batch (its rows and index rows, marshalled)."""
    rows, keys = marshal.loads(packed)
    _open(url)
    _writing_apps[url].recorder.insert_rows(  # type: ignore[attr-defined]
        rows, keys=keys, recorded_at=recorded_at)


def _report(
    work: _Work, on_reject: Callable[[Rejected], None], on_outcome: Callable[[Outcome], None] | None
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
