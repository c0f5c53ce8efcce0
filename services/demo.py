"""The demo: the bundled sample feed into a ledger, and a summary of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from ledger.playbook import playbook_events
from services.ingest import IngestResult, ingest_feed
from services.ledger import open_ledger


@dataclass(frozen=True)
class DemoReport:
    ingest: IngestResult
    events: int


def sample_feed() -> Iterator[bytes]:
    return (orjson.dumps(event) for event in playbook_events())


def run_demo(url: str) -> DemoReport:
    result = ingest_feed(url, sample_feed())
    with open_ledger(url) as app:
        stored = app.ledger_recorder.count_keys()
    return DemoReport(result, stored)
