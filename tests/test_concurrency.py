"""Concurrent writers: overlapping feeds ingested at once store every event exactly once."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from bench.generate import generate
from ledger.store import LedgerApplication
from projections import reference
from projections.engine import MRRIndex
from projections.fold import fold
from projections.periods import end_of
from projections.projection import MRRProjection, read_facts
from services.events import list_events
from tests.feeds import jsonl


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
    results = [w.communicate(timeout=600) for w in writers]
    for writer, (_, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err.decode()

    stored = [e["event_id"] for e in list_events(db_url)]
    assert len(stored) == len(set(stored)) == len(unique)
    assert set(stored) == unique

    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        projection.catch_up()
        index = MRRIndex.from_rows(*projection.view.load())
        histories = fold(list(read_facts(app)))
    for day in (date(2022, 12, 31), date(2024, 6, 30), date(2025, 12, 31)):
        assert index.total(end_of(day)) == reference.mrr_at(histories, end_of(day))
