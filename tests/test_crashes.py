"""kill -9 at random points of `revledger ingest`, `import stripe` and `replay`: re-running
the command gives exactly the ledger of one clean run (same events in the same order, a
chain that verifies, the same figures). Both stores."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bench.generate import generate
from ledger.application import LedgerApplication
from ledger.ingest import Ingestor
from ledger.workers import SPOOL_PREFIX, Spool
from projections.projection import MRRProjection
from services.events import list_events
from tests.feeds import jsonl
from tests.stripe_fixtures import DAY, LATEST, T0, event, item, price, subscription

ROOT = Path(__file__).resolve().parent.parent
KILLS = 3


def revledger(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "--db", db_url, *args], cwd=ROOT,
                          capture_output=True, timeout=600)


def events_recorded(db_url: str) -> int:
    """Committed events, read behind the writer's back."""
    if db_url.startswith("sqlite"):
        import sqlite3

        path = db_url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            return 0
        with sqlite3.connect(path, timeout=30) as conn:
            try:
                return conn.execute("SELECT COUNT(*) FROM event_chain").fetchone()[0]
            except sqlite3.OperationalError:  # not created yet
                return 0
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('event_chain')").fetchone()[0] is None:
            return 0
        return conn.execute("SELECT COUNT(*) FROM event_chain").fetchone()[0]


def kill_when(process: subprocess.Popen, db_url: str, at_least: int) -> bool:
    """SIGKILL the process once `at_least` events are committed; False if it ended first."""
    while process.poll() is None:
        if events_recorded(db_url) >= at_least:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)  # polling the database, not guessing a duration
    return False


def figures(db_url: str) -> list:
    out = []
    for args in (["mrr", "--at", "2024-06-30"],
                 ["nrr", "--start", "2023-12-31", "--end", "2024-12-31"],
                 ["movements", "--start", "2024-01", "--end", "2024-06"]):
        answer = revledger(db_url, *args, "--format", "json")
        assert answer.returncode == 0, answer.stderr.decode()
        report = json.loads(answer.stdout)
        report.pop("manifest")
        out.append(report)
    return out


def ledger_of(db_url: str) -> tuple[list, list]:
    verified = revledger(db_url, "verify")
    assert verified.returncode == 0, verified.stderr.decode()
    return [(e["event_id"], e["payload"]) for e in list_events(db_url)], figures(db_url)


def crash_and_rerun(db_url: str, args: list[str], total: int, seed: int) -> int:
    """Kill the command KILLS times at random numbers of committed events (the last one
    once every event is in, during the projection update), then run it to the end."""
    rng = random.Random(seed)
    thresholds = [*sorted(rng.randrange(1, total) for _ in range(KILLS - 1)), total]
    kills = 0
    for threshold in thresholds:
        process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, *args],
                                   cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        kills += kill_when(process, db_url, threshold)
    final = revledger(db_url, *args)
    assert final.returncode == 0, final.stderr.decode()
    assert no_process_left(db_url)
    return kills


def no_process_left(db_url: str) -> bool:
    """No process (a killed command's worker, say) still works on this ledger."""
    deadline = time.monotonic() + 10
    while True:
        left = [pid for pid in os.listdir("/proc") if pid.isdigit()
                and db_url.encode() in _cmdline(pid)]
        if not left or time.monotonic() > deadline:
            return not left
        time.sleep(0.05)  # SIGKILL reaches an orphan asynchronously


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


@pytest.fixture
def clean_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'clean.db'}"


def test_kill_9_during_ingest_then_rerun_equals_one_clean_ingest(db_url, clean_url, tmp_path,
                                                                  monkeypatch):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=2500, seed=5)))
    lines = feed.read_bytes().count(b"\n")
    temp = tmp_path / "temp"  # where the commands keep their workers' results (spools)
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    assert revledger(clean_url, "ingest", str(feed)).returncode == 0
    kills = crash_and_rerun(db_url, ["ingest", str(feed)], lines * 9 // 10, seed=1)
    assert kills >= 1
    assert ledger_of(db_url) == ledger_of(clean_url)
    assert list(temp.iterdir()) == []  # the killed commands' spools went with the re-run


def test_the_spools_of_killed_processes_go_when_the_next_one_is_made(tmp_path):
    """A command killed outright cannot remove its spool; the next command to make one
    (in the same directory) removes it. A live process's spool stays."""
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    left = tmp_path / f"{SPOOL_PREFIX}{gone.pid}-x1y2"
    left.mkdir()
    (left / "results").write_bytes(b"2 MB of checked lines")
    live = tmp_path / f"{SPOOL_PREFIX}{os.getppid()}-a3b4"
    live.mkdir()
    spool = Spool(tmp_path)
    try:
        assert sorted(tmp_path.iterdir()) == sorted([live, Path(spool.directory)])
    finally:
        spool.close()


def kill_workers_when(process: subprocess.Popen, db_url: str, at_least: int) -> int:
    """SIGKILL the processes the command started (not the command) once `at_least` events
    are committed; how many there were."""
    while process.poll() is None:
        if events_recorded(db_url) >= at_least:
            with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
                workers = [int(pid) for pid in children.read().split()]
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            return len(workers)
        time.sleep(0.01)  # polling the database, not guessing a duration
    return 0


def test_a_worker_killed_during_ingest_is_one_line_and_the_rerun_completes(db_url, clean_url,
                                                                          tmp_path):
    """The out-of-memory killer picks the largest process, which may be a worker of the
    ingest: the command says so in one line, keeps every batch it committed, and the same
    command then completes the ledger."""
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=6000, seed=4)))  # several batches
    assert revledger(clean_url, "ingest", str(feed)).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, "ingest",
                                str(feed)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert kill_workers_when(process, db_url, 1000) >= 1  # once a batch has committed
    _, err = process.communicate(timeout=600)
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        "revledger: a process checking or writing this feed died (killed? out of memory?); "
        "what was recorded before stays recorded, and running the command again is safe"]
    assert 1000 <= events_recorded(db_url) < events_recorded(clean_url)
    assert revledger(db_url, "ingest", str(feed)).returncode == 0
    assert no_process_left(db_url)
    assert ledger_of(db_url) == ledger_of(clean_url)


def test_kill_9_during_import_stripe_then_rerun_equals_one_clean_import(db_url, clean_url,
                                                                       tmp_path):
    events = []
    for n in range(3000):
        sub = subscription(LATEST, f"sub_{n}", f"cus_{n % 700}",
                           items=[item(LATEST, price(cents=1000 + n), 1 + n % 3)],
                           start=T0 + n * 600)
        events.append(event(LATEST, f"evt_c{n}", "customer.subscription.created", sub,
                            T0 + n * 600))
        if n % 4 == 0:
            events.append(event(LATEST, f"evt_d{n}", "customer.subscription.deleted",
                                {**sub, "status": "canceled", "ended_at": T0 + 90 * DAY},
                                T0 + 90 * DAY))
    backfill = tmp_path / "events.jsonl"
    backfill.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    assert revledger(clean_url, "import", "stripe", str(backfill)).returncode == 0
    crash_and_rerun(db_url, ["import", "stripe", str(backfill)], len(events) * 9 // 10, seed=2)
    assert ledger_of(db_url) == ledger_of(clean_url)


def test_kill_9_during_replay_then_queries_and_replay_equal_a_clean_rebuild(db_url, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=2000, seed=8)))
    assert revledger(db_url, "ingest", str(feed)).returncode == 0
    clean = figures(db_url)
    rng = random.Random(3)
    for _ in range(KILLS):
        process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, "replay"],
                                   cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.0))  # where it dies; the outcome may not depend on it
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert figures(db_url) == clean
    assert revledger(db_url, "replay").returncode == 0
    assert figures(db_url) == clean
    assert revledger(db_url, "verify").returncode == 0


def test_kill_9_during_catch_up_then_queries_equal_a_clean_ledger(db_url, clean_url, tmp_path):
    """A small ingest onto a large ledger updates the projection page by page (not a
    rebuild); killing it there leaves a view the next query finishes correctly."""
    events = list(generate(customers=2500, seed=12))
    base, delta = tmp_path / "base.jsonl", tmp_path / "delta.jsonl"
    base.write_bytes(jsonl(*events[: len(events) * 4 // 5]))
    delta.write_bytes(jsonl(*events[len(events) * 4 // 5:]))
    for url in (db_url, clean_url):
        assert revledger(url, "ingest", str(base)).returncode == 0
    assert revledger(clean_url, "ingest", str(delta)).returncode == 0
    everything = events_recorded(clean_url)
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, "ingest",
                                str(delta)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # Killed as soon as its last batch has committed: inside the projection's catch-up.
    assert kill_when(process, db_url, everything)
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        assert projection.position < projection.head()  # the view was left behind
    assert ledger_of(db_url) == ledger_of(clean_url)


def recorded_not_projected(db_url: str, feed: Path) -> None:
    """What a kill between recording and projecting leaves: every batch of the feed
    committed, the projection not updated (ingest's recording stage, run alone)."""
    with LedgerApplication(db_url) as app:
        summary = Ingestor(app).ingest(enumerate(feed.read_bytes().splitlines(), start=1))
        assert summary.accepted
        projection = MRRProjection(app)
        assert projection.position < projection.head()


def projection_behind(db_url: str) -> bool:
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        return projection.position < projection.head()


def test_the_rerun_after_a_kill_between_recording_and_projecting_projects(db_url, clean_url,
                                                                         tmp_path):
    """Every event of the re-run is a duplicate, yet its "projection updated" is true:
    the projection then reflects every event, without a `replay`."""
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=300, seed=14)))
    assert revledger(clean_url, "ingest", str(feed)).returncode == 0
    recorded_not_projected(db_url, feed)
    rerun = revledger(db_url, "ingest", str(feed))
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert "accepted 0," in rerun.stderr.decode()
    assert "projection updated" in rerun.stderr.decode()
    assert not projection_behind(db_url)
    assert ledger_of(db_url) == ledger_of(clean_url)


def test_a_killed_ingest_rerun_leaves_no_projection_behind(db_url, clean_url, tmp_path):
    """The same with a real kill -9 once the last batch has committed."""
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=2500, seed=15)))
    assert revledger(clean_url, "ingest", str(feed)).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, "ingest",
                                str(feed)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    kill_when(process, db_url, events_recorded(clean_url))
    rerun = revledger(db_url, "ingest", str(feed))
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert not projection_behind(db_url)
    assert ledger_of(db_url) == ledger_of(clean_url)


def test_an_analyst_finds_a_projection_left_behind_told_what_to_run_then_served(pg_url,
                                                                              tmp_path):
    """A role that may only read cannot finish the projection itself: one line says what
    to run (not "permission denied"); once the ingest is re-run, it is answered."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=100, seed=16)))
    assert revledger(pg_url, "init").returncode == 0
    recorded_not_projected(pg_url, feed)
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'; "
                     f"GRANT USAGE ON SCHEMA public TO {role}; "
                     f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    parts = urlsplit(pg_url)
    analyst = urlunsplit(parts._replace(netloc=f"{role}:pw@{parts.hostname}:{parts.port}"))
    nrr = ("nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    try:
        refused = revledger(analyst, *nrr)
        assert refused.returncode == 1
        (line,) = refused.stderr.decode().splitlines()
        assert "projection is behind" in line and "revledger ingest" in line
        assert "revledger replay" in line
        assert revledger(pg_url, "ingest", str(feed)).returncode == 0
        answered = revledger(analyst, *nrr)
        assert answered.returncode == 0, answered.stderr.decode()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
