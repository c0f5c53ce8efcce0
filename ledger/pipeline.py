"""The pipeline: each batch is written while the next one is decided, in the writers' turn.

The next batch is decided as if the one being written had landed: its events count as
recorded, its streams' heads as moved on. Should it not land (another writer got there
first), it is decided and written again at once, and the next one decided afresh. The
turn is handed on every `turn_batches` batches, between one batch landing and the next
being written, so other writers are not kept waiting for a whole feed; the next batch is
decided afresh only if one of them wrote meanwhile.

What the pipeline drives is a `Stage` (deciding against a store, writing, the writers'
turn) and a `Writer` (where a batch is written, `ledger.writers`): both are parameters,
so the order of the steps can be tested with fakes, and the ledger's own stage
(`ledger.ingest.Ingestor`) with faults of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from concurrent.futures import Future
from contextlib import AbstractContextManager, ExitStack, suppress
from dataclasses import dataclass
from itertools import chain, islice
from typing import Generic, Protocol, TypeVar

from eventsourcing.persistence import IntegrityError

from ledger.feed import Checked, Rejected

TURN_BATCHES = 4  # batches written in one writers' turn: how long other writers may wait

B = TypeVar("B", bound=Sized)  # a decided batch: its length, the events it will write


class Stage(Protocol[B]):
    """Deciding batches against a store and keeping up with it, for the pipeline."""

    def decide(self, candidates: list[Checked]) -> B:
        """The batch's decisions, taking the batch being written (`expect`, until it has
        `landed`) as recorded."""
        ...

    def record(self, candidates: list[Checked]) -> B:
        """Decide and write a batch at once, again while other writers got there first;
        in the writers' turn."""
        ...

    def expect(self, batch: B) -> None:
        """Take a batch as the store's, before it has landed (`forget` if it does not)."""
        ...

    def landed(self) -> None:
        """The batch being written (`expect`) has landed."""
        ...

    def forget(self) -> None:
        """Another writer moved on: what was taken of the store may be stale."""
        ...

    def turn(self) -> AbstractContextManager[None]:
        """The writers' turn, held while deciding and writing."""
        ...

    def mark(self) -> object:
        """How far the store is: unchanged while no writer writes."""
        ...


class Writer(Protocol[B]):
    """Where batches are written (`ledger.writers`): `submit` starts a write and returns
    its future, whose result raises what the write raised (`IntegrityError`: another
    writer got there first); `close` waits for what was submitted."""

    def submit(self, batch: B) -> Future[None]: ...
    def close(self) -> None: ...


@dataclass
class Work(Generic[B]):
    """A batch of the feed once checked: its decisions, and their write once submitted."""

    read: int  # lines of the feed it covers
    candidates: list[Checked]
    rejected: list[Rejected]  # by the checks
    batch: B
    written: Future[None] | None = None


class Pipeline(Generic[B]):
    """Pushed one checked batch at a time; each is reported (`report`) once written, or
    once decided if it writes nothing. Used as a context manager: leaving it lands the
    last batch, hands the turn back and closes the writer."""

    def __init__(
        self,
        stage: Stage[B],
        writer: Writer[B],
        report: Callable[[Work[B]], None],
        *,
        turn_batches: int = TURN_BATCHES,
    ) -> None:
        self.stage = stage
        self.writer = writer
        self.report = report
        self.turn_batches = turn_batches
        self.turn = ExitStack()
        self.holding = False  # the writers' turn
        self.in_turn = 0  # batches decided in this turn
        self.pending: Work[B] | None = None  # being written

    def __enter__(self) -> Pipeline[B]:
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
        elif self.pending is None and self.in_turn >= self.turn_batches:
            self._hand_on()  # nothing decided yet: nothing to decide again
        work = Work(read, candidates, rejected, self.stage.decide(candidates))
        if self.pending is not None:
            fresh = self._land()
            if self.in_turn >= self.turn_batches:
                fresh = self._hand_on() and fresh
            if not fresh:
                work.batch = self.stage.decide(candidates)
        if len(work.batch):
            self.stage.expect(work.batch)
            work.written = self.writer.submit(work.batch)
            self.pending = work
        else:
            self.report(work)
        self.in_turn += 1

    def _take_turn(self) -> None:
        self.turn.enter_context(self.stage.turn())
        self.holding, self.in_turn = True, 0

    def _hand_on(self) -> bool:
        """Let waiting writers go, then take the turn again; False if one of them wrote
        (what was decided meanwhile may be stale)."""
        mark = self.stage.mark()
        self.turn.close()
        self._take_turn()
        if self.stage.mark() == mark:
            return True
        self.stage.forget()
        return False

    def _land(self) -> bool:
        """Wait for the batch being written and report it; False if it had to be decided
        and written again."""
        assert self.pending is not None and self.pending.written is not None
        work, self.pending = self.pending, None
        try:
            work.written.result()
            self.stage.landed()
            landed = True
        except IntegrityError:
            self.stage.forget()
            work.batch = self.stage.record(work.candidates)
            landed = False
        self.report(work)
        return landed


def run(
    batches: Iterable[tuple[int, list[Checked | Rejected]]],
    stage: Stage[B],
    writer: Callable[[bool], Writer[B]],
    report: Callable[[Work[B]], None],
    *,
    turn_batches: int = TURN_BATCHES,
) -> None:
    """Decide and write checked batches (lines read, their results) in order; `writer`
    is told whether there are several batches before it is made (one batch may not be
    worth a process of its own)."""
    batches = iter(batches)
    first = list(islice(batches, 2))
    with Pipeline(stage, writer(len(first) > 1), report, turn_batches=turn_batches) as pipe:
        for read, results in chain(first, batches):
            pipe.push(read, results)
