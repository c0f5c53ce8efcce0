"""The machinery of ingest: the checking process, the writers, the pipeline and its turns.

The pipeline's order of steps is driven with a fake stage and writer (no database); the
faults of the real stages (the ledger's `Ingestor`, its writing process, the checking
process) go through their public seams: constructor parameters, the methods the pipeline
drives (overridden), the function a writing process inserts with.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from contextlib import contextmanager
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.checker import CHECKER_NICE, checked_batches
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.pipeline import Pipeline, Work
from ledger.rules import Layer, Outcome
from ledger.workers import SPOOL_PREFIX, Spool
from ledger.writers import InProcess, insert_rows
from services.errors import LedgerError
from services.events import list_events
from services.ledger import open_ledger
from services.verify import verify_ledger
from tests.feeds import changed, jsonl, started, voided
from tests.test_ingest import FEED, recorded, snapshot, stored_keys

# -- the pipeline, driven with fakes -----------------------------------------------------


class FakeStage:
    """Decides a batch as the list of its records' ids; notes every step in `log`."""

    def __init__(self, log: list[str], others_before: frozenset[int] = frozenset()) -> None:
        self.log = log
        self.position = 0  # how far the store is: another writer moves it
        self.turns = 0
        self.others_before = others_before  # the turns another writer writes just before
        self.in_flight = None  # the batch being written, from `expect` until `landed`

    def decide(self, candidates):
        ids = [c.event_id for c in candidates]
        self.log.append(f"decide {ids} on {self.in_flight}")
        return ids

    def record(self, candidates):
        ids = [c.event_id for c in candidates]
        self.log.append(f"record {ids}")
        return ids

    def expect(self, batch):
        self.log.append(f"expect {batch}")
        self.in_flight = batch

    def landed(self):
        self.in_flight = None

    def forget(self):
        self.log.append("forget")
        self.in_flight = None

    @contextmanager
    def turn(self):
        self.turns += 1
        if self.turns in self.others_before:
            self.position += 1
        self.log.append("take turn")
        yield
        self.log.append("hand turn on")

    def mark(self):
        return self.position


class FakeWriter:
    """Writes a batch when the pipeline waits for it; refuses those in `refused` once, as
    when another writer got there first."""

    def __init__(self, log: list[str], refused: set[str] = frozenset()) -> None:
        self.log = log
        self.refused = set(refused)

    def submit(self, batch):
        self.log.append(f"submit {batch}")
        future: Future[None] = Future()
        if self.refused & set(batch):
            self.refused -= set(batch)
            future.set_exception(IntegrityError("another writer got there first"))
        else:
            future.set_result(None)
        return future

    def close(self):
        self.log.append("close")


def checked(*ids: str) -> list:
    lines = numbered_lines(jsonl(*(started(i, "s1", "c1", "2024-01-01T00:00:00Z")
                                   for i in ids)).splitlines())
    return next(checked_batches(lines, len(ids), parallel=False))[1]


def pushed(stage: FakeStage, writer: FakeWriter, *batches: list, turn_batches: int = 4
           ) -> list[str]:
    def report(work: Work) -> None:
        stage.log.append(f"report {work.batch}")

    with Pipeline(stage, writer, report, turn_batches=turn_batches) as pipeline:
        for batch in batches:
            pipeline.push(len(batch), batch)
    return stage.log


def test_each_batch_is_decided_on_the_one_being_written_and_reported_once_it_landed():
    log: list[str] = []
    assert pushed(FakeStage(log), FakeWriter(log), checked("a"), checked("b")) == [
        "take turn", "decide ['a'] on None", "expect ['a']", "submit ['a']",
        "decide ['b'] on ['a']", "report ['a']", "expect ['b']", "submit ['b']",
        "report ['b']", "hand turn on", "close",
    ]


def test_a_batch_the_store_refuses_is_recorded_again_at_once_and_the_next_decided_afresh():
    log: list[str] = []
    assert pushed(FakeStage(log), FakeWriter(log, {"a"}), checked("a"), checked("b")) == [
        "take turn", "decide ['a'] on None", "expect ['a']", "submit ['a']",
        "decide ['b'] on ['a']", "forget", "record ['a']", "report ['a']",
        "decide ['b'] on None", "expect ['b']", "submit ['b']", "report ['b']",
        "hand turn on", "close",
    ]


def test_a_batch_with_nothing_to_write_is_reported_at_once():
    log: list[str] = []
    stage = FakeStage(log)
    stage.decide = lambda candidates: []  # type: ignore[method-assign]
    assert pushed(stage, FakeWriter(log), checked("a")) == [
        "take turn", "report []", "hand turn on", "close"]


@pytest.mark.parametrize("another_writer_wrote", [False, True])
def test_the_turn_is_handed_on_between_a_batch_landing_and_the_next_being_written(
    another_writer_wrote,
):
    """The batch decided before the turn was handed on is decided again only if another
    writer wrote meanwhile (its mark moved), after forgetting what was taken of the store."""
    log: list[str] = []
    stage = FakeStage(log, frozenset({2}) if another_writer_wrote else frozenset())
    pushed(stage, FakeWriter(log), checked("a"), checked("b"), checked("c"), turn_batches=2)
    again = ["forget", "decide ['c'] on None"] if another_writer_wrote else []
    assert log[log.index("decide ['c'] on ['b']"):] == [
        "decide ['c'] on ['b']", "report ['b']", "hand turn on", "take turn", *again,
        "expect ['c']", "submit ['c']", "report ['c']", "hand turn on", "close",
    ]


# -- the checking process -----------------------------------------------------------------


def niceness(batch: list) -> list:
    """A check that answers with the niceness of the process it runs in (by name: it is
    sent to the checking process)."""
    return [os.nice(0)]


class DyingHalfway(Spool):
    """Killed (out of memory, say) halfway through handing a batch's results over."""

    def put(self, value: object) -> str:
        path = super().put(value)
        with open(path, "r+b") as half:
            half.truncate(os.path.getsize(path) // 2)
        os._exit(9)


def test_lines_checked_in_a_worker_process_come_back_as_checked_in_process():
    lines = list(numbered_lines(
        (jsonl(*FEED) + b"not json\n\n" + jsonl(voided("e5", "e1"))).splitlines()
    ))
    serial = list(checked_batches(lines, 2, parallel=False))
    parallel = list(checked_batches(lines, 2, parallel=True))
    assert parallel == serial
    assert [read for read, _ in serial] == [2, 2, 2, 1]
    for batches in (serial, parallel):  # a plain tuple would compare equal: types too
        assert [type(r).__name__ for _, results in batches for r in results] == [
            "Checked", "Checked", "Checked", "Checked", "Rejected", "Checked"
        ]


def test_lines_are_checked_in_a_process_of_lower_priority():
    """Deciding and writing are ingest's critical path: the checking process, which runs
    ahead of them, takes what they leave of the cores."""
    lines = list(numbered_lines(jsonl(*FEED).splitlines()))
    nice = [r for _, results in checked_batches(lines, 1, parallel=True, check=niceness)
            for r in results]
    assert nice[0] == os.nice(0)  # the first batch, checked here while the worker starts
    assert set(nice[1:]) == {min(os.nice(0) + CHECKER_NICE, 19)}


def test_a_checking_process_that_dies_handing_results_over_ends_the_feed_not_hangs():
    """Killed (out of memory, say) halfway through handing a batch's results over: the
    reader must not wait for the rest forever."""
    lines = list(numbered_lines(jsonl(*FEED).splitlines()))
    with pytest.raises(BrokenExecutor):
        list(checked_batches(lines, 1, parallel=True, spool=DyingHalfway))


# -- the ledger's stage, with faults --------------------------------------------------------


class FailingOnTheSecondBatch(Ingestor):
    decided = 0

    def decide(self, candidates):
        self.decided += 1
        if self.decided == 2:
            raise OperationalError("the disk is full")
        return super().decide(candidates)


def spools_in(directory: Path, made: list[str]) -> Callable[[], Spool]:
    """Makes spools in `directory` (not the system's temporary one, which other processes
    share), noting each one's own directory in `made`."""
    def spool() -> Spool:
        spool = Spool(directory)
        made.append(spool.directory)
        return spool

    return spool


def test_an_ingest_that_fails_midway_stops_its_checking_process_and_removes_its_spool(
    db_url, tmp_path
):
    """At once, not when the error is let go: a caller may keep it (errors as data), and
    its traceback holds the frames of the feed being checked."""
    made: list[str] = []
    with open_ledger(db_url) as app, pytest.raises(OperationalError) as kept:
        FailingOnTheSecondBatch(app, batch_size=1, parallel=True,
                                spool=spools_in(tmp_path, made)).ingest(
            numbered_lines(jsonl(*FEED).splitlines()))
    assert kept.value.__traceback__ is not None
    assert len(made) == 1  # the checking process handed its results through it
    assert list(tmp_path.glob(SPOOL_PREFIX + "*")) == []
    assert not multiprocessing.active_children()


class RefusingOnce(Ingestor):
    """Its first write is refused, as when another writer got there first."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refusals: list = []

    def write(self, batch) -> None:
        if not self.refusals:
            self.refusals.append(batch)
            raise IntegrityError("another writer got there first")
        super().write(batch)


def test_a_batch_the_store_refuses_is_decided_again_and_so_is_the_next(db_url, tmp_path):
    """As when another writer got there first: the refused batch is decided afresh, and so
    is the next one, which was decided as if the refused one had landed."""
    feed = [*FEED, changed("e5", "s1", "c1", "2024-04-01T00:00:00Z", quantity=3),
            voided("e6", "e1")]
    with open_ledger(db_url) as app:
        ingestor = RefusingOnce(app, batch_size=2, parallel=False)
        summary = ingestor.ingest(numbered_lines(jsonl(*feed).splitlines()))
        refused_then_written = stored_keys(app, feed), snapshot(db_url)
    assert ingestor.refusals and (summary.accepted, summary.rejected) == (6, 0)
    _, *clean = recorded(f"sqlite:///{tmp_path / 'clean.db'}", feed, len(feed))
    assert refused_then_written == tuple(clean)


class RefusingInTheWriterProcess:
    """How SQLite's writer process (forked) inserts: it refuses a batch with `error` once
    it has written `after` batches, leaving `mark` behind (what it does is not seen here).
    Sent there once, when the process opens the ledger, so its count stays there."""

    def __init__(self, error: Exception, mark: Path, *, after: int = 0) -> None:
        self.error, self.mark, self.after = error, mark, after
        self.written: list[int] = []

    def __call__(self, recorder, rows, keys, recorded_at) -> None:
        if not self.mark.exists() and len(self.written) == self.after:
            self.mark.write_text(str(os.getpid()))
            raise self.error
        self.written.append(len(rows))
        insert_rows(recorder, rows, keys, recorded_at)


def writing_process(url: str, insert: RefusingInTheWriterProcess):
    return lambda several: InProcess(url, insert)


def test_a_batch_the_writer_process_refuses_is_decided_again_here(tmp_path):
    """On SQLite the batches of a feed of several are written by a forked process: a
    refusal there (another writer got there first) comes back here, and the batch is
    decided and written again, as when this process writes."""
    feed = [*FEED, changed("e5", "s1", "c1", "2024-04-01T00:00:00Z", quantity=3),
            voided("e6", "e1")]
    mark = tmp_path / "refused"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    refusing = RefusingInTheWriterProcess(IntegrityError("another writer got there"), mark)
    assert recorded(url, feed, 2, parallel=True, writer=writing_process(url, refusing)) == (
        recorded(f"sqlite:///{tmp_path / 'clean.db'}", feed, len(feed)))
    assert int(mark.read_text()) != os.getpid()
    assert verify_ledger(url).ok


FORKS: list[int] = []  # every fork of this process from here on (a hook cannot be removed)
os.register_at_fork(before=lambda: FORKS.append(os.getpid()))


def test_a_feed_of_one_batch_starts_no_other_process(tmp_path):
    """A webhook's one event, say: a process would cost more than the batch."""
    forks = len(FORKS)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    outcomes, _, _ = recorded(url, FEED, len(FEED), parallel=True)
    assert len(FORKS) == forks, "forked for one batch"
    assert [o.status for o in outcomes] == ["accepted"] * len(FEED)


def test_a_database_error_in_the_writer_process_is_raised_here_and_what_landed_is_whole(
    tmp_path
):
    mark = tmp_path / "refused"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    refusing = RefusingInTheWriterProcess(OperationalError("database or disk is full"), mark,
                                          after=1)
    with pytest.raises(LedgerError, match=r"disk is full$"):  # one line, as from here
        recorded(url, FEED, 1, parallel=True, writer=writing_process(url, refusing))
    assert int(mark.read_text()) != os.getpid()
    assert [e["event_id"] for e in list_events(url)] == ["e1"]  # the batch before
    assert verify_ledger(url).ok


def test_a_batch_decided_before_a_turn_is_handed_on_sees_what_was_written_meanwhile(db_url):
    """The turn is handed on between one batch landing and the next being written, which
    was decided before: it is decided again if another writer wrote in between. Here the
    other writer records x1, which the next batch voids (decided before, the void would
    be refused: no x1), and the batch after repeats (a duplicate)."""
    x1 = started("x1", "s9", "c9", "2024-01-09T00:00:00Z")
    ours = [*FEED[:2], voided("v1", "x1"), x1]
    turns = []
    with open_ledger(db_url) as app, open_ledger(db_url) as other:

        class AfterAnotherWriter(Ingestor):
            @contextmanager
            def turn(self):
                turns.append(len(turns) + 1)
                if len(turns) == 2:  # the first turn was just handed on
                    Ingestor(other, parallel=False).ingest(
                        numbered_lines(jsonl(x1).splitlines()))
                with super().turn():
                    yield

        outcomes: list[Outcome] = []
        AfterAnotherWriter(app, batch_size=1, parallel=False, turn_batches=2).ingest(
            numbered_lines(jsonl(*ours).splitlines()), on_outcome=outcomes.append)
    assert turns == [1, 2]
    assert [o.status for o in outcomes] == ["accepted", "accepted", "accepted", "duplicate"]


class NotingWhatIsTakenAsRecorded(Ingestor):
    """Notes, for each batch decided, how many recorded events it was decided on beyond
    the store's: those of the layers beneath its decisions."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.taken: list[int] = []

    def decide(self, candidates):
        batch = super().decide(candidates)
        held, layer = 0, batch.decided.below
        while isinstance(layer, Layer):
            held, layer = held + len(layer.recordings), layer.below
        self.taken.append(held)
        return batch


def test_a_batch_takes_as_recorded_only_the_batch_being_written_so_memory_stays_flat(db_url):
    """Over several turns: a batch is decided on the events of the batch being written,
    not on every earlier batch's as well (held, they would grow with the feed)."""
    feed = [started(f"e{n}", f"s{n}", f"c{n}", "2024-01-01T00:00:00Z") for n in range(12)]
    with open_ledger(db_url) as app:
        ingestor = NotingWhatIsTakenAsRecorded(app, batch_size=2, parallel=False,
                                               turn_batches=2)
        summary = ingestor.ingest(numbered_lines(jsonl(*feed).splitlines()))
    taken = ingestor.taken
    assert summary.accepted == 12
    assert taken[0] == 0 and set(taken[1:]) == {2}
