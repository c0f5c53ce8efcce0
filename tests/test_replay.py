"""The replay shared between two processes gives what one process folding every customer
gives, in the same order; a worker's failure is the caller's error, never a partial answer.

Runs are made tiny here (a few events each), so a small ledger is cut into dozens of runs
and both processes fold some of them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from itertools import pairwise

import pytest

from bench.generate import generate
from ledger.application import LedgerApplication
from ledger.workers import SPOOL_PREFIX
from projections.check import compare
from projections.engine import MRRIndex
from projections.periods import end_of
from projections.projection import MRRProjection
from projections.replay import Claims, Plan, fold_run, replay, runs_of
from services.errors import LedgerError
from services.ingest import ingest_feed
from services.projections import rebuild_projections
from tests.feeds import in_units, jsonl, stored_reference
from tests.test_pipeline import spools_in


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'ledger.db'}"
    ingest_feed(url, jsonl(*generate(customers=120, seed=11)).splitlines())
    return url


TINY = Plan(run=7)
ONE_CORE = Plan(run=7, two_cores=lambda: False)


def in_worker(parent: int, fault: Callable[[], None]) -> Plan:
    """Tiny runs whose fold meets `fault` in the worker process (and works here)."""
    def fold(recorder, upto, run):
        if os.getpid() != parent:
            fault()
        return fold_run(recorder, upto, run)

    return Plan(run=7, fold=fold)


def test_runs_cut_the_customers_in_byte_order_without_overlap(ledger):
    with LedgerApplication(ledger) as app:
        runs = runs_of(app.ledger_recorder, 7)
        firsts = [run.first for run in runs[1:]]
        assert len(runs) > 20
        assert firsts == sorted(firsts, key=str.encode) and len(set(firsts)) == len(firsts)
        assert all(a.after == b.first for a, b in pairwise(runs))


def test_two_processes_give_what_one_gives_in_the_same_order(ledger):
    with LedgerApplication(ledger) as app:
        head = app.ledger_recorder.max_notification_id()
        shared = list(replay(app, head, plan=TINY))
        assert shared == list(replay(app, head, plan=ONE_CORE))
        assert [rows.customers[0][0] for rows in shared] == sorted(
            (rows.customers[0][0] for rows in shared), key=str.encode)


def test_a_rebuild_shared_between_processes_writes_the_same_view_and_columns(ledger):
    with LedgerApplication(ledger) as app:
        projection = MRRProjection(app, plan=TINY)
        head, _ = projection.rebuild()
        shared = projection.view.stored(), projection.view.load_snapshot(head)
        MRRProjection(app, plan=ONE_CORE).rebuild()
        assert (projection.view.stored(), projection.view.load_snapshot(head)) == shared
        assert shared[1] == projection.view.read(MRRIndex.from_rows).to_bytes()
        assert compare(projection).difference is None


def test_an_error_in_the_worker_is_raised_here(ledger):
    def cannot_fold() -> None:
        raise ValueError("the worker could not fold")

    plan = in_worker(os.getpid(), cannot_fold)
    with LedgerApplication(ledger) as app, pytest.raises(ValueError, match="could not fold"):
        list(replay(app, app.ledger_recorder.max_notification_id(), plan=plan))


class DiskFull:
    """A view whose rebuild takes the first customer's rows, then finds the disk full."""

    def rebuild(self, rows, tracking, snapshot) -> int:
        next(iter(rows))
        raise OSError("database or disk is full")


def test_a_rebuild_that_fails_midway_stops_its_worker_and_removes_its_spool(ledger, tmp_path):
    """At once, whoever keeps the error (and with it the frames of the replay) afterwards."""
    made: list[str] = []
    plan = replace(TINY, spool=spools_in(tmp_path, made))
    with LedgerApplication(ledger) as app, pytest.raises(OSError) as kept:
        MRRProjection(app, plan=plan, view=DiskFull()).rebuild()
    assert kept.value.__traceback__ is not None
    assert len(made) == 1  # the worker handed its results through it
    assert list(tmp_path.glob(SPOOL_PREFIX + "*")) == []
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_is_an_error_not_a_short_answer(ledger):
    plan = in_worker(os.getpid(), lambda: os._exit(3))
    with LedgerApplication(ledger) as app, pytest.raises(RuntimeError, match="exit code 3"):
        list(replay(app, app.ledger_recorder.max_notification_id(), plan=plan))


class DyingWithTheLock(Claims):
    """Claims whose `take`, in the worker, dies holding the lock."""

    def __init__(self, runs: int) -> None:
        super().__init__(runs)
        self.parent = os.getpid()  # made here, before the fork

    def take(self, worker=None):
        if os.getpid() != self.parent:
            self.lock.acquire()
            os._exit(4)
        return super().take(worker)


def test_a_worker_that_dies_holding_the_claims_lock_is_an_error_not_a_hang(ledger):
    plan = Plan(run=7, claims=DyingWithTheLock)
    with LedgerApplication(ledger) as app, pytest.raises(RuntimeError, match="exit code 4"):
        list(replay(app, app.ledger_recorder.max_notification_id(), plan=plan))


def test_a_worker_that_dies_ends_the_replay_in_one_line(ledger):
    """Through the service `revledger replay` calls, with a fold that dies in the worker:
    the command prints a `LedgerError` as this one line on stderr and exits 1."""
    plan = in_worker(os.getpid(), lambda: os._exit(9))
    with pytest.raises(LedgerError) as failed:
        rebuild_projections(ledger, plan=plan)
    assert str(failed.value).splitlines() == [
        "the replay worker died (exit code 9) (killed? out of memory?); what was "
        "recorded before stays recorded, and running the command again is safe"]


def test_postgresql_replays_in_one_process(pg_url):
    """Its customer index is in the database's collation: no byte-order ranges there."""
    with LedgerApplication(pg_url) as app:
        assert app.ledger_recorder.customer_bounds(7) == []


def test_the_view_known_at_each_ingest_is_what_it_held_then_and_a_fold_of_it(db_url):
    """Four ingests of a realistic feed (late, duplicate and voiding deliveries): after a
    rebuild on both cores, the rows read as known at each ingest are those the view held
    then, and they answer what the pure fold of the events recorded by then answers."""
    lines = jsonl(*generate(customers=60, seed=5)).splitlines()
    then = []
    for part in range(4):
        ingest_feed(db_url, lines[part::4])
        with LedgerApplication(db_url) as app:
            projection = MRRProjection(app)
            projection.catch_up()
            then.append((projection.position, projection.view.load()))
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app, plan=TINY)
        stored = projection.view.stored()
        projection.rebuild()
        assert projection.view.stored() == stored
        for position, rows in then:
            assert projection.view.load(position) == rows
            expected = stored_reference(app, position)
            index = MRRIndex.from_rows(*rows)
            for start, end in ((date(2023, 12, 31), date(2024, 12, 31)),
                               (date(2024, 6, 30), date(2025, 3, 31))):
                retention = index.nrr(end_of(start), end_of(end))
                assert in_units(retention) == expected.nrr(start, end)
                total, customers = index.total(end_of(end))
                assert (total / 100, customers) == expected.mrr(end)
