"""The replay shared between two processes gives what one process folding every customer
gives, in the same order; a worker's failure is the caller's error, never a partial answer.

Runs are made tiny here (a few events each), so a small ledger is cut into dozens of runs
and both processes fold some of them.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from datetime import date
from itertools import pairwise

import pytest
from click.testing import CliRunner

import projections.projection
import projections.replay as replay_module
from bench.generate import generate
from cli import main
from ledger.application import LedgerApplication
from ledger.workers import SPOOL_PREFIX
from projections.check import compare
from projections.engine import MRRIndex
from projections.periods import end_of
from projections.projection import MRRProjection
from projections.replay import replay
from services.ingest import ingest_feed
from tests.feeds import in_units, jsonl, stored_reference


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'ledger.db'}"
    ingest_feed(url, jsonl(*generate(customers=120, seed=11)).splitlines())
    return url


@pytest.fixture
def tiny_runs(monkeypatch):
    monkeypatch.setattr(replay_module, "RUN", 7)


def test_runs_cut_the_customers_in_byte_order_without_overlap(ledger, tiny_runs):
    with LedgerApplication(ledger) as app:
        runs = replay_module._runs(app.ledger_recorder)
        firsts = [run.first for run in runs[1:]]
        assert len(runs) > 20
        assert firsts == sorted(firsts, key=str.encode) and len(set(firsts)) == len(firsts)
        assert all(a.after == b.first for a, b in pairwise(runs))


def test_two_processes_give_what_one_gives_in_the_same_order(ledger, tiny_runs, monkeypatch):
    with LedgerApplication(ledger) as app:
        head = app.ledger_recorder.max_notification_id()
        shared = list(replay(app, head))
        monkeypatch.setattr(replay_module, "second_core", lambda: False)
        assert shared == list(replay(app, head))
        assert [rows.customers[0][0] for rows in shared] == sorted(
            (rows.customers[0][0] for rows in shared), key=str.encode)


def test_a_rebuild_shared_between_processes_writes_the_same_view_and_columns(ledger, tiny_runs,
                                                                  monkeypatch):
    with LedgerApplication(ledger) as app:
        projection = MRRProjection(app)
        head, _ = projection.rebuild()
        shared = projection.view.stored(), projection.view.load_snapshot(head)
        monkeypatch.setattr(replay_module, "second_core", lambda: False)
        projection.rebuild()
        assert (projection.view.stored(), projection.view.load_snapshot(head)) == shared
        assert shared[1] == projection.view.read(MRRIndex.from_rows).to_bytes()
        assert compare(projection).difference is None


def test_an_error_in_the_worker_is_raised_here(ledger, tiny_runs, monkeypatch):
    parent, fold_run = os.getpid(), replay_module._fold

    def failing_in_worker(recorder, upto, run):
        if os.getpid() != parent:
            raise ValueError("the worker could not fold")
        return fold_run(recorder, upto, run)

    monkeypatch.setattr(replay_module, "_fold", failing_in_worker)
    with LedgerApplication(ledger) as app, pytest.raises(ValueError, match="could not fold"):
        list(replay(app, app.ledger_recorder.max_notification_id()))


def test_a_rebuild_that_fails_midway_stops_its_worker_and_removes_its_spool(
    ledger, tiny_runs, tmp_path, monkeypatch
):
    """At once, whoever keeps the error (and with it the frames of the replay) afterwards."""
    def failing_after_one_customer(customers, columns):
        next(iter(customers))
        raise OSError("database or disk is full")
        yield

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(projections.projection, "gathering", failing_after_one_customer)
    with LedgerApplication(ledger) as app, pytest.raises(OSError) as kept:
        MRRProjection(app).rebuild()
    assert kept.value.__traceback__ is not None
    assert list(tmp_path.glob(SPOOL_PREFIX + "*")) == []
    assert not multiprocessing.active_children()


def exit_in_worker(monkeypatch, code: int) -> None:
    """The replay's worker process exits with `code` as it folds a run."""
    parent, fold_run = os.getpid(), replay_module._fold

    def dying_in_worker(recorder, upto, run):
        if os.getpid() != parent:
            os._exit(code)
        return fold_run(recorder, upto, run)

    monkeypatch.setattr(replay_module, "_fold", dying_in_worker)


def test_a_worker_that_dies_is_an_error_not_a_short_answer(ledger, tiny_runs, monkeypatch):
    exit_in_worker(monkeypatch, 3)
    with LedgerApplication(ledger) as app, pytest.raises(RuntimeError, match="exit code 3"):
        list(replay(app, app.ledger_recorder.max_notification_id()))


def test_a_worker_that_dies_holding_the_claims_lock_is_an_error_not_a_hang(ledger, tiny_runs,
                                                                          monkeypatch):
    parent, take = os.getpid(), replay_module._Claims.take

    def dying_with_the_lock(claims, worker=None):
        if os.getpid() != parent:
            claims.lock.acquire()
            os._exit(4)
        return take(claims, worker)

    monkeypatch.setattr(replay_module._Claims, "take", dying_with_the_lock)
    with LedgerApplication(ledger) as app, pytest.raises(RuntimeError, match="exit code 4"):
        list(replay(app, app.ledger_recorder.max_notification_id()))


def test_a_worker_that_dies_ends_the_replay_command_in_one_line(ledger, tiny_runs, monkeypatch):
    exit_in_worker(monkeypatch, 9)
    result = CliRunner().invoke(main, ["--db", ledger, "replay"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "revledger: the replay worker died (exit code 9) (killed? out of memory?); what was "
        "recorded before stays recorded, and running the command again is safe"]


def test_postgresql_replays_in_one_process(pg_url):
    """Its customer index is in the database's collation: no byte-order ranges there."""
    with LedgerApplication(pg_url) as app:
        assert app.ledger_recorder.customer_bounds(7) == []


def test_the_view_known_at_each_ingest_is_what_it_held_then_and_a_fold_of_it(db_url, tiny_runs):
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
        projection = MRRProjection(app)
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
