"""Ingest: validate a stream of canonical records and append them, a batch at a time.

Lines are checked by `ledger.checks` (in a second process for a long feed:
`ledger.checker`). Each batch is decided by the rules (`ledger.rules`) on what the store
already holds (`ledger.lookup`: at most two queries per batch) and appended in one
transaction with its index rows and chain links. If another writer got there first, the
transaction fails on a key (or on the chain's order) and the batch is decided again from
fresh state, so concurrent ingests of overlapping feeds store every event exactly once.
Outcomes are data (`Rejected`, `Outcome`, `IngestSummary`), reported once their batch has
committed.

A batch is written while the next one is decided (`ledger.pipeline`), by a writer that
suits the store (`ledger.writers`). `Ingestor` is the pipeline's stage for one ledger:
its public methods are what the pipeline drives, and what a test may override.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from ledger.aggregates import Customer, Rate, Recorded, Subscription, stream_event
from ledger.application import LedgerApplication
from ledger.checker import checked_batches
from ledger.checks import Check, check_batch
from ledger.feed import Checked, Rejected
from ledger.instants import format_instant, parse_instant
from ledger.lookup import StoreLookup
from ledger.memory import collector_paused
from ledger.pipeline import TURN_BATCHES, Work, Writer, run
from ledger.rules import Decided, Outcome, decide, outcomes, stamp
from ledger.sources import channel
from ledger.workers import Spool, WorkerDied, second_core
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
class Batch:
    """A batch decided and encoded, not yet written: its length is its events'."""

    decided: Decided
    ids: dict[str, UUID]  # the aggregate id of every stream it may extend
    timestamp: datetime  # its recording instant
    stored: list[StoredEvent]  # its accepted events, encoded, in feed order
    keys: list[tuple]  # the rest of each event's index row

    def __len__(self) -> int:
        return len(self.keys)


class Ingestor:
    """Appends canonical records to one ledger; keeps a bounded cache of stream heads.

    `turn_batches` is how many batches a writers' turn lasts; `writer`, if given, makes
    the writer of a feed (told whether it has several batches) instead of `writer()`;
    `clock` tells the time batches are recorded at; `spool` makes the directory the
    checking process hands its results through (in the system's temporary directory,
    `TMPDIR`, unless given)."""

    def __init__(
        self,
        app: LedgerApplication,
        *,
        batch_size: int = BATCH_SIZE,
        cache_size: int = 200_000,
        parallel: bool | None = None,
        turn_batches: int = TURN_BATCHES,
        writer: Callable[[bool], Writer[Batch]] | None = None,
        clock: Callable[[], datetime] = Recorded.create_timestamp,
        spool: Callable[[], Spool] = Spool,
    ) -> None:
        self.app = app
        self.recorder = app.ledger_recorder
        app.reporting_currency()  # opens the ledger (its settings) on first use
        self.batch_size = batch_size
        self.parallel = second_core() if parallel is None else parallel  # checking, writing
        self.turn_batches = turn_batches
        self.make_writer = writer or self.writer
        self.clock = clock
        self.spool = spool
        self.lookup = StoreLookup(self.recorder, cache_size)
        self.floor = self._head_instant()

    def ingest(
        self,
        lines: Iterable[tuple[int, bytes]],
        on_reject: Callable[[Rejected], None] = lambda r: None,
        on_batch: Callable[[IngestSummary], None] = lambda s: None,
        on_outcome: Callable[[Outcome], None] | None = None,
        check: Check | None = None,
    ) -> IngestSummary:
        """Record numbered raw lines; blank lines are skipped, bad ones reported.
        `on_outcome`, if given, hears of every record once its batch has committed.
        `check` checks a batch of lines (`check_batch` for the channel that delivered
        them; canonical lines unless given), in the checking process for a long feed."""
        if check is None:
            check = partial(check_batch, channel=channel("canonical"))
        total = IngestSummary()

        def report(work: Work[Batch]) -> None:
            summary = _report(work, on_reject, on_outcome)
            total.add(summary)
            on_batch(summary)

        # closing: an error stops the checking process and removes its spool at once,
        # whoever keeps the error (and with it this frame) afterwards.
        with collector_paused(), closing(
            checked_batches(lines, self.batch_size, parallel=self.parallel, check=check,
                            spool=self.spool)
        ) as batches:
            try:
                run(batches, self, self.make_writer, report, turn_batches=self.turn_batches)
            except BrokenExecutor:
                raise WorkerDied("a process checking or writing this feed died") from None
        return total

    # -- the pipeline's stage ---------------------------------------------------------------

    def decide(self, candidates: list[Checked]) -> Batch:
        """The batch's decisions, taking the batch being written (`expect`) as recorded."""
        known, ids = self.lookup.known(candidates)
        return self._encode(decide(candidates, known), ids,
                            stamp(self.clock(), self.floor))

    def record(self, candidates: list[Checked]) -> Batch:
        """Decide and write a batch at once, again while other writers got there first;
        in the writers' turn."""
        for _ in range(MAX_ATTEMPTS):
            batch = self.decide(candidates)
            if not batch:
                return batch
            try:
                self.write(batch)
            except IntegrityError:
                self.forget()
                continue
            self.expect(batch)
            self.landed()
            return batch
        raise OperationalError("gave up after repeated write conflicts with other writers")

    def expect(self, batch: Batch) -> None:
        """Take a batch's streams and time as the store's, before it has landed: the next
        batch is decided on them. (`forget` if it does not land.)"""
        self.floor = batch.timestamp
        self.lookup.expect(batch.decided, batch.ids)

    def landed(self) -> None:
        """The batch being written has landed."""
        self.lookup.landed()

    def forget(self) -> None:
        """Another writer moved on: what is cached of the store may be stale."""
        self.lookup.forget()
        self.floor = self._head_instant()

    def turn(self) -> AbstractContextManager[None]:
        return self.app.writing()

    def mark(self) -> int | None:
        return self.recorder.max_notification_id()

    def write(self, batch: Batch) -> None:
        """Append a batch here, now."""
        self.recorder.insert_events(batch.stored, keys=batch.keys,
                                    recorded_at=format_instant(batch.timestamp))

    def writer(self, several: bool) -> Writer[Batch]:
        """Where this ledger's batches are written. A process of its own pays for a feed
        of several batches only (a webhook's one event never forks)."""
        if self.recorder.writes_in_thread:
            return InThread(self.write)
        if not (self.parallel and several):
            return Here(self.write)
        return InProcess(self.app.url)

    # -- the rest ---------------------------------------------------------------------------

    def _encode(self, decided: Decided, ids: dict[str, UUID], timestamp: datetime) -> Batch:
        """The accepted records as the domain events recording them, encoded."""
        events = []
        keys = []
        for c, stream, version, customer_id, subscription_id in decided.accepted:
            events.append(stream_event(
                Subscription if subscription_id is not None
                else Customer if customer_id is not None else Rate,
                ids[stream], version, timestamp, key=stream[2:],
                customer_id=customer_id, event_id=c.event_id, type=c.type,
                effective_at=c.effective_at, payload=orjson.Fragment(c.raw),
            ))
            keys.append((c.event_id, c.sha, c.type, customer_id, subscription_id, c.voids))
        to_stored = self.app.mapper.to_stored_event
        return Batch(decided, ids, timestamp, [to_stored(e) for e in events], keys)

    def _head_instant(self) -> datetime | None:
        """When the ledger's last event was recorded: a batch must be stamped later."""
        head = self.recorder.chain_head()
        return parse_instant(head.recorded_at) if head else None


def _report(
    work: Work[Batch],
    on_reject: Callable[[Rejected], None],
    on_outcome: Callable[[Outcome], None] | None,
) -> IngestSummary:
    decided = work.batch.decided
    rejected = [*work.rejected, *decided.rejected]
    for reject in sorted(rejected, key=lambda r: r.line):
        on_reject(reject)
    if on_outcome is not None:
        for outcome in sorted(outcomes(decided, work.rejected), key=lambda o: o.line):
            on_outcome(outcome)
    return IngestSummary(
        accepted=len(work.batch),
        duplicates=len(decided.duplicates),
        rejected=len(rejected),
        lines=work.read,
    )
