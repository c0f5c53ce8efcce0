"""The demo: the bundled sample feed into a ledger, and a summary of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from ledger.playbook import playbook_events
from services.ingest import IngestResult, ingest_feed
from services.ledger import open_ledger
from services.metrics import mrr_report, nrr_report

# The sample's last full year: NRR of the customers paying at the end of 2018.
START, END = date(2018, 12, 31), date(2019, 12, 31)


@dataclass(frozen=True)
class DemoReport:
    ingest: IngestResult
    events: int
    mrr_start: dict[str, Any]
    mrr_end: dict[str, Any]
    retention: dict[str, Any]


def sample_feed() -> Iterator[bytes]:
    return (orjson.dumps(event) for event in playbook_events())


def run_demo(url: str) -> DemoReport:
    result = ingest_feed(url, sample_feed())
    with open_ledger(url) as app:
        stored = app.ledger_recorder.count_keys()
    return DemoReport(
        result, stored, mrr_report(url, START), mrr_report(url, END), nrr_report(url, START, END)
    )
