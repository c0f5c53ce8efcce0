"""Ingest a canonical feed into a ledger."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.feed import Rejected, numbered_lines
from ledger.ingest import Ingestor, IngestSummary
from services.ledger import open_ledger
from services.projections import current_index


@dataclass(frozen=True)
class IngestResult:
    summary: IngestSummary
    seconds: float  # recording the events
    projection_seconds: float  # bringing the projection up to date afterwards

    @property
    def events_per_second(self) -> float:
        """Display only: records handled (accepted + duplicate + rejected) per second."""
        handled = self.summary.accepted + self.summary.duplicates + self.summary.rejected
        return handled / self.seconds if self.seconds > 0 else 0.0


def ingest_feed(
    url: str,
    feed: Iterable[bytes],
    *,
    on_reject: Callable[[Rejected], None] = lambda r: None,
    on_batch: Callable[[IngestSummary], None] = lambda s: None,
) -> IngestResult:
    """Record every good line of a JSON Lines feed; report each bad one to `on_reject`."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        summary = Ingestor(app).ingest(numbered_lines(feed), on_reject, on_batch)
        recorded = time.perf_counter()
        if summary.accepted:
            current_index(app)  # queries then find the projection and its columns current
    return IngestResult(summary, recorded - started, time.perf_counter() - recorded)
