"""Concurrent writers: overlapping feeds ingested by four processes while the HTTP server
takes the same events store every event exactly once, and the projections equal a fresh
fold."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date

import httpx
import uvicorn

from api.app import create_app
from bench.generate import generate
from ledger.application import LedgerApplication
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from projections.engine import MRRIndex
from projections.periods import end_of
from projections.projection import MRRProjection
from services.events import list_events
from services.verify import verify_ledger
from tests.feeds import jsonl, stored_reference


@contextmanager
def serving(db_url: str) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(db_url, "t", None), host="127.0.0.1",
                                           port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_overlapping_feeds_ingested_at_once_store_each_event_once(db_url, tmp_path):
    events = list(generate(customers=300, seed=11))
    unique = {e["event_id"] for e in events}
    third = len(events) // 3
    # Each feed is self-consistent (a void follows its target), so none may be rejected.
    feeds = [events, events[: 2 * third], events[:third] + events[: 2 * third], events]
    paths = []
    for n, feed in enumerate(feeds):
        path = tmp_path / f"feed{n}.jsonl"
        path.write_bytes(jsonl(*feed))
        paths.append(path)
    writers = [
        subprocess.Popen([sys.executable, "-m", "cli", "--db", db_url, "ingest", str(p)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for p in paths
    ]
    # Meanwhile the HTTP server takes the same events, 25 per request, from 4 clients (not
    # the voids: one could arrive before its target, and be refused for that).
    posted = [e for e in events if e["type"] != "event.voided"]
    with serving(db_url) as base, ThreadPoolExecutor(4) as pool:
        chunks = [posted[i:i + 25] for i in range(0, len(posted), 25)]
        answers = list(pool.map(
            lambda chunk: httpx.post(base + "/v1/events", content=jsonl(*chunk),
                                     headers={"Authorization": "Bearer t"}, timeout=300),
            chunks,
        ))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:1]
    results = [w.communicate(timeout=600) for w in writers]
    for writer, (_, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err.decode()
    assert verify_ledger(db_url).ok

    stored = [e["event_id"] for e in list_events(db_url)]
    assert len(stored) == len(set(stored)) == len(unique)
    assert set(stored) == unique

    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        projection.catch_up()
        index = MRRIndex.from_rows(*projection.view.load())
        expected = stored_reference(app)
    for day in (date(2022, 12, 31), date(2024, 6, 30), date(2025, 12, 31)):
        total, customers = index.total(end_of(day))
        assert (total / 100, customers) == expected.mrr(day)


def test_writers_handing_the_turn_on_batch_by_batch_store_each_event_once(db_url):
    """Three writers with tiny batches and turns of two batches, so the turn changes hands
    all the time: a batch decided while another writer wrote is decided again, or refused
    by the store and decided again. Every event is stored once, nothing is refused."""
    events = list(generate(customers=60, seed=5))
    third = len(events) // 3
    feeds = [events, events[: 2 * third], events]
    LedgerApplication(db_url).close()  # tables created once, before the writers start

    def ingest(feed: list[dict]) -> tuple[int, list[str]]:
        rejected: list[str] = []
        with LedgerApplication(db_url) as app:
            summary = Ingestor(app, batch_size=7, parallel=False, turn_batches=2).ingest(
                numbered_lines(jsonl(*feed).splitlines()),
                on_reject=lambda r: rejected.append(str(r)))
        return summary.accepted, rejected

    with ThreadPoolExecutor(len(feeds)) as pool:
        results = list(pool.map(ingest, feeds))
    assert [rejected for _, rejected in results] == [[], [], []]
    stored = [e["event_id"] for e in list_events(db_url)]
    assert sorted(stored) == sorted({e["event_id"] for e in events})
    assert sum(accepted for accepted, _ in results) == len(stored)
    assert verify_ledger(db_url).ok


WRITER = """
import sys
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.application import LedgerApplication
with LedgerApplication(sys.argv[1]) as app, open(sys.argv[2], "rb") as feed:
    summary = Ingestor(app, batch_size=40, parallel=True).ingest(numbered_lines(feed))
print(summary.accepted, summary.rejected)
"""


def test_writers_checking_and_writing_in_processes_of_their_own_store_each_event_once(
    db_url, tmp_path
):
    """Three processes, each with its own checking and (on SQLite) writing processes, in
    batches of 40 over overlapping feeds: every event is stored once, nothing refused."""
    events = list(generate(customers=120, seed=7))
    third = len(events) // 3
    LedgerApplication(db_url).close()
    paths = []
    # Each feed is self-consistent (a void follows its target), so none may be rejected.
    for n, feed in enumerate([events, events[:third] + events[: 2 * third], events[: 2 * third]]):
        paths.append(tmp_path / f"feed{n}.jsonl")
        paths[-1].write_bytes(jsonl(*feed))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(p)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for p in paths]
    results = [w.communicate(timeout=600) for w in writers]
    for writer, (_, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err.decode()
    counts = [tuple(map(int, out.split())) for out, _ in results]
    stored = [e["event_id"] for e in list_events(db_url)]
    assert sorted(stored) == sorted({e["event_id"] for e in events})
    assert sum(accepted for accepted, _ in counts) == len(stored)
    assert [rejected for _, rejected in counts] == [0, 0, 0]
    assert verify_ledger(db_url).ok
