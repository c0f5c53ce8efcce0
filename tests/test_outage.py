"""A database that goes away: PostgreSQL stopped before or during an ingest and a query
gives a one-line error naming the database, a non-zero exit and no partial event; after a
restart the same command succeeds. `serve` answers 503 meanwhile and recovers by itself.

Each test runs its own PostgreSQL cluster (it is stopped and started under the test)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from bench.generate import generate
from services.events import list_events
from tests.feeds import jsonl, started
from tests.test_crashes import events_recorded, figures, kill_when, ledger_of, revledger

ROOT = Path(__file__).resolve().parent.parent


class Cluster:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            pytest.skip("no local PostgreSQL binaries (scripts/test.sh installs them)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="revledger-outage-")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._pg("initdb", "-D", f"{self.dir}/data", "-U", "revledger", "--auth=trust")
        self.url = f"postgresql://revledger@127.0.0.1:{self.port}/postgres"
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        command = [f"{self.bin}/{tool}", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                 f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")

    def processes(self) -> list[int]:
        """The postmaster and every process it started (the backends among them)."""
        pid = int(Path(f"{self.dir}/data/postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server frozen (SIGSTOP to all its processes, as a paused VM or a hung host
        would be): its kernel still accepts connections and acknowledges packets, nothing
        answers. Thawed on the way out, whatever happened."""
        frozen = self.processes()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in frozen:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    pg = Cluster()
    yield pg
    pg.remove()


def one_line_naming(result: subprocess.CompletedProcess, cluster: Cluster) -> str:
    stderr = result.stderr.decode().strip()
    assert result.returncode == 1, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    assert f"127.0.0.1:{cluster.port}" in stderr
    return stderr


def test_a_stopped_database_is_one_line_then_the_same_command_succeeds(cluster, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=200, seed=4)))
    cluster.stop()
    one_line_naming(revledger(cluster.url, "ingest", str(feed)), cluster)
    one_line_naming(revledger(cluster.url, "nrr", "--start", "2024-01-31", "--end",
                              "2024-06-30"), cluster)
    cluster.start()
    assert revledger(cluster.url, "ingest", str(feed)).returncode == 0
    assert revledger(cluster.url, "nrr", "--start", "2024-01-31", "--end",
                     "2024-06-30").returncode == 0


def test_a_database_stopped_during_ingest_loses_nothing_and_halves_nothing(cluster, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=2500, seed=6)))
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    assert revledger(clean, "ingest", str(feed)).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", cluster.url, "ingest",
                                str(feed)], cwd=ROOT, stderr=subprocess.PIPE)
    while events_recorded(cluster.url) < 5000:
        assert process.poll() is None, "the ingest ended before the database could go away"
        time.sleep(0.01)
    cluster.stop()
    one_line_naming(ended_within(process, DEADLINE), cluster)
    cluster.start()
    assert revledger(cluster.url, "ingest", str(feed)).returncode == 0
    assert ledger_of(cluster.url) == ledger_of(clean)


@contextmanager
def serving(url: str) -> Iterator[httpx.Client]:
    """`serve` on a free port in a thread, and a client of it with the token."""
    config = uvicorn.Config(create_app(url, "t", None), host="127.0.0.1", port=0,
                            log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer t"},
                          timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_serve_answers_503_while_the_database_is_down_and_recovers(cluster):
    with serving(cluster.url) as client:
        first = started("e1", "s1", "c1", "2024-01-01T00:00:00Z")
        assert client.post("/v1/events", content=jsonl(first)).status_code == 200
        cluster.stop()
        down = client.post("/v1/events", content=jsonl(started(
            "e2", "s2", "c2", "2024-01-01T00:00:00Z")))
        assert down.status_code == 503
        assert f"127.0.0.1:{cluster.port}" in down.json()["error"]
        assert client.get("/v1/health").status_code == 503
        cluster.start()
        again = client.post("/v1/events", content=jsonl(started(
            "e2", "s2", "c2", "2024-01-01T00:00:00Z")))
        assert again.status_code == 200, again.text
        assert client.get("/v1/health").json()["status"] == "ok"
    assert [e["event_id"] for e in list_events(cluster.url)] == ["e1", "e2"]


def test_a_killed_ingest_against_a_restarted_database_still_converges(cluster, tmp_path):
    """Both faults at once: the database restarts while a killed ingest is re-run."""
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=800, seed=9)))
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", cluster.url, "ingest",
                                str(feed)], cwd=ROOT, stderr=subprocess.DEVNULL)
    kill_when(process, cluster.url, 1000)
    cluster.stop()
    cluster.start()
    assert revledger(cluster.url, "ingest", str(feed)).returncode == 0
    assert revledger(cluster.url, "verify").returncode == 0
    assert figures(cluster.url)




# How soon a database that stopped answering must be reported (docs/operations.md: about
# 7 s by default); the margin is for a loaded machine, not for the design.
DEADLINE = 15


def ended_within(process: subprocess.Popen, seconds: float) -> subprocess.CompletedProcess:
    """The process's result, which must come within `seconds`."""
    started = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"still waiting {seconds} s after the database went away")
    assert time.monotonic() - started < seconds
    return subprocess.CompletedProcess(process.args, process.returncode, b"", stderr)


def ingest_until(cluster: Cluster, feed: Path, recorded: int) -> subprocess.Popen:
    """An ingest of `feed` running, once `recorded` events are committed."""
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", cluster.url, "ingest",
                                str(feed)], cwd=ROOT, stderr=subprocess.PIPE)
    while events_recorded(cluster.url) < recorded:
        assert process.poll() is None, "the ingest ended before the database could go away"
        time.sleep(0.01)  # polling the database, not guessing a duration
    return process


def test_a_database_frozen_during_ingest_is_one_line_within_seconds_then_the_rerun_completes(
        cluster, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=2500, seed=6)))
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    assert revledger(clean, "ingest", str(feed)).returncode == 0
    process = ingest_until(cluster, feed, 5000)
    with cluster.frozen():
        result = ended_within(process, DEADLINE)
    line = one_line_naming(result, cluster)
    assert "did not answer" in line
    assert revledger(cluster.url, "ingest", str(feed)).returncode == 0
    assert ledger_of(cluster.url) == ledger_of(clean)


def test_a_database_stopped_during_the_rebuild_after_an_ingest_is_one_line(cluster, tmp_path):
    """An ingest onto an empty ledger ends with a rebuild of the projection; the server
    stopped while the rebuild streams the events is one line, no traceback."""
    import psycopg

    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(jsonl(*generate(customers=4000, seed=4)))  # over 20,000 events
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", cluster.url, "ingest",
                                str(feed)], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    with psycopg.connect(cluster.url, autocommit=True) as watcher:
        while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE query "
                                  "LIKE '%revledger_stream%' AND pid <> pg_backend_pid()"
                                  ).fetchone()[0]:
            assert process.poll() is None, "the ingest ended before its rebuild was seen"
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling the server, not guessing a duration
    cluster.stop()
    one_line_naming(ended_within(process, DEADLINE), cluster)
    cluster.start()
    assert revledger(cluster.url, "ingest", str(feed)).returncode == 0
    assert revledger(cluster.url, "verify").returncode == 0


def test_serve_answers_503_within_seconds_while_the_database_is_frozen_and_recovers(cluster):
    with serving(cluster.url) as client:
        assert client.post("/v1/events", content=jsonl(started(
            "e1", "s1", "c1", "2024-01-01T00:00:00Z"))).status_code == 200
        late = jsonl(started("e2", "s2", "c2", "2024-01-01T00:00:00Z"))
        with cluster.frozen():
            for ask in (lambda: client.post("/v1/events", content=late),
                        lambda: client.get("/v1/health")):
                started_at = time.monotonic()
                answer = ask()
                assert answer.status_code == 503, answer.text
                assert time.monotonic() - started_at < DEADLINE
        deadline = time.monotonic() + 60  # thawed: it answers again by itself
        while (again := client.post("/v1/events", content=late)).status_code != 200:
            assert again.status_code == 503 and time.monotonic() < deadline, again.text
        assert client.get("/v1/health").json()["status"] == "ok"
    assert [e["event_id"] for e in list_events(cluster.url)] == ["e1", "e2"]


@pytest.mark.parametrize("command", [
    ["ingest", "-"], ["nrr", "--start", "2024-01-31", "--end", "2024-06-30"],
    ["mrr", "--at", "2024-06-30"], ["events"], ["verify"], ["replay"]])
def test_every_command_facing_a_frozen_database_is_one_line_within_seconds(cluster, command):
    seeded = subprocess.run([sys.executable, "-m", "cli", "--db", cluster.url, "ingest", "-"],
                            cwd=ROOT, input=jsonl(*generate(customers=20, seed=2)),
                            capture_output=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr.decode()
    with cluster.frozen():
        process = subprocess.Popen([sys.executable, "-m", "cli", "--db", cluster.url,
                                    *command], cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result = ended_within(process, DEADLINE)
    one_line_naming(result, cluster)
