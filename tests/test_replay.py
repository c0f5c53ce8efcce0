"""The replay shared between two processes gives what one process folding every customer
gives, in the same order; a worker's failure is the caller's error, never a partial answer.

Runs are made tiny here (a few events each), so a small ledger is cut into dozens of runs
and both processes fold some of them.
"""

from __future__ import annotations

import os
from itertools import pairwise

import pytest

import projections.replay as replay_module
from bench.generate import generate
from ledger.store import LedgerApplication
from projections.fold import fold
from projections.projection import MRRProjection, read_facts
from projections.replay import replay
from projections.view import customer_rows, table_rows
from services.ingest import ingest_feed
from tests.feeds import changed, jsonl, started, voided


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'ledger.db'}"
    ingest_feed(url, jsonl(*generate(customers=120, seed=11)).splitlines())
    return url


@pytest.fixture
def tiny_runs(monkeypatch):
    monkeypatch.setattr(replay_module, "RUN", 7)


def _in_one_process(app, upto, known_at=None):
    return sorted(fold(list(read_facts(app, upto)), known_at).items())


def test_runs_cut_the_customers_in_byte_order_without_overlap(ledger, tiny_runs):
    with LedgerApplication(ledger) as app:
        runs = replay_module._runs(app.ledger_recorder)
        firsts = [run.first for run in runs[1:]]
        assert len(runs) > 20
        assert firsts == sorted(firsts, key=str.encode) and len(set(firsts)) == len(firsts)
        assert all(a.after == b.first for a, b in pairwise(runs))


def test_two_processes_give_what_one_gives_in_the_same_order(ledger, tiny_runs):
    with LedgerApplication(ledger) as app:
        head = app.ledger_recorder.max_notification_id()
        assert list(replay(app, head)) == _in_one_process(app, head)
        middle = app.ledger_recorder.chain_head(upto=head // 2)
        assert list(replay(app, middle.position, middle.recorded_at)) == _in_one_process(
            app, middle.position, middle.recorded_at)


def test_a_rebuild_shared_between_processes_writes_the_same_view(ledger, tiny_runs,
                                                                  monkeypatch):
    with LedgerApplication(ledger) as app:
        projection = MRRProjection(app)
        projection.rebuild()
        shared = projection.view.load()
        monkeypatch.setattr(replay_module, "second_core", lambda: False)
        projection.rebuild()
        assert projection.view.load() == shared
        assert projection.first_difference()[1] is None


def test_an_error_in_the_worker_is_raised_here(ledger, tiny_runs, monkeypatch):
    parent, fold_run = os.getpid(), replay_module._fold

    def failing_in_worker(recorder, job, run):
        if os.getpid() != parent:
            raise ValueError("the worker could not fold")
        return fold_run(recorder, job, run)

    monkeypatch.setattr(replay_module, "_fold", failing_in_worker)
    with LedgerApplication(ledger) as app, pytest.raises(ValueError, match="could not fold"):
        list(replay(app, app.ledger_recorder.max_notification_id()))


def test_a_worker_that_dies_is_an_error_not_a_short_answer(ledger, tiny_runs, monkeypatch):
    parent, fold_run = os.getpid(), replay_module._fold

    def dying_in_worker(recorder, job, run):
        if os.getpid() != parent:
            os._exit(3)
        return fold_run(recorder, job, run)

    monkeypatch.setattr(replay_module, "_fold", dying_in_worker)
    with LedgerApplication(ledger) as app, pytest.raises(RuntimeError, match="exit code 3"):
        list(replay(app, app.ledger_recorder.max_notification_id()))


def test_postgresql_replays_in_one_process(pg_url):
    """Its customer index is in the database's collation: no byte-order ranges there."""
    with LedgerApplication(pg_url) as app:
        assert app.ledger_recorder.customer_bounds(7) == []


def test_the_view_as_known_at_any_past_position_equals_a_replay_up_to_it(db_url):
    """Rows from the current view for customers untouched since, refolded ones for the
    others (or a whole replay when most changed): exactly the replay's rows."""
    lines = jsonl(*generate(customers=60, seed=5)).splitlines()
    for part in range(4):  # four ingests: four recording instants to look back at
        ingest_feed(db_url, lines[part::4])
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        links = list(app.ledger_recorder.iter_chain())
        # the last position of each transaction: the ledger's opening, then each ingest
        boundaries = sorted({row[6]: row[5] for row in links}.items())
        assert len(boundaries) == 5
        _assert_known_at_equals_replay(app, projection, boundaries)


def test_a_few_customers_changed_since_are_refolded_the_rest_read_from_the_view(
        db_url, monkeypatch):
    events = list(generate(customers=60, seed=8))
    ingest_feed(db_url, jsonl(*events).splitlines())
    with LedgerApplication(db_url) as app:
        first_ingest = app.ledger_recorder.chain_head()
    subscription = next(e for e in events if e["type"] == "subscription.started")
    later = [  # a backdated change, a void of an early event, a brand-new customer
        changed("late-1", subscription["subscription_id"], subscription["customer_id"],
                "2022-01-01T00:00:00Z", quantity=7),
        voided("late-2", events[3]["event_id"]),
        started("late-3", "s-new", "c-new", "2023-05-01T00:00:00Z"),
    ]
    ingest_feed(db_url, jsonl(*later).splitlines())
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        known_at = first_ingest.recorded_at
        assert 2 <= len(projection._touched_after(first_ingest.position)[0]) <= 3
        monkeypatch.setattr("projections.projection.replay", _no_replay)  # the view path
        rows = projection.rows_known_at(first_ingest.position, known_at)
        monkeypatch.undo()
        steps, attributes, customers = table_rows(
            replay(app, first_ingest.position, known_at, shape=customer_rows))
        assert rows == (customers, steps, attributes)
        assert "c-new" not in {row[0] for row in rows[0]}


def _no_replay(*args, **kwargs):
    raise AssertionError("a whole replay where a few customers changed")


def _assert_known_at_equals_replay(app, projection, boundaries):
    for known_at, position in boundaries:
        steps, attributes, customers = table_rows(
            replay(app, position, known_at, shape=customer_rows))
        assert projection.rows_known_at(position, known_at) == (customers, steps, attributes)

