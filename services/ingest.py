"""Ingest: a canonical feed, a Stripe backfill, or records posted over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import PersistenceError

from ledger.feed import Rejected, numbered_lines
from ledger.ingest import Ingestor, IngestSummary, Outcome
from ledger.store import LedgerApplication, redact
from ledger.stripe import canonical_lines, read_events
from projections.projection import MRRProjection
from services.errors import LedgerError
from services.ledger import first_line, open_ledger
from services.projections import current_index


@dataclass(frozen=True)
class IngestResult:
    summary: IngestSummary
    seconds: float  # recording the events
    projection_seconds: float  # bringing the projection up to date afterwards
    ignored: int = 0  # Stripe events of types that carry no revenue

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
    return _record(url, numbered_lines(feed), on_reject, on_batch)


def import_stripe(
    url: str,
    data: Iterable[bytes],
    *,
    on_reject: Callable[[Rejected], None] = lambda r: None,
    on_batch: Callable[[IngestSummary], None] = lambda s: None,
) -> IngestResult:
    """Record Stripe Event objects (a JSON array or JSON Lines) through the mapping."""
    ignored: list[int] = []
    unmapped: list[Rejected] = []

    def lines() -> Iterator[tuple[int, bytes]]:
        for item in canonical_lines(read_events(data), ignored):
            if isinstance(item, Rejected):
                unmapped.append(item)
                on_reject(item)
            else:
                yield item

    result = _record(url, lines(), on_reject, on_batch)
    result.summary.rejected += len(unmapped)
    return IngestResult(result.summary, result.seconds, result.projection_seconds, len(ignored))


def _record(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    on_reject: Callable[[Rejected], None],
    on_batch: Callable[[IngestSummary], None],
) -> IngestResult:
    started = time.perf_counter()
    with open_ledger(url) as app:
        summary = Ingestor(app).ingest(lines, on_reject, on_batch)
        recorded = time.perf_counter()
        if summary.accepted:
            current_index(app)  # queries then find the projection and its columns current
    return IngestResult(summary, recorded - started, time.perf_counter() - recorded)


class LedgerWriter:
    """A ledger kept open to record many small requests (the HTTP server).

    One request records at a time in a process (the store serialises writers anyway) and
    is answered after its events and the projection's catch-up have committed. A lost
    database connection closes the ledger; the next request opens it again.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._open: tuple[LedgerApplication, Ingestor, MRRProjection] | None = None

    def record(self, lines: list[bytes]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with self._lock, self._ledger() as (_, ingestor, projection):
            ingestor.ingest(numbered_lines(lines), on_outcome=outcomes.append)
            if any(o.status == "accepted" for o in outcomes):
                projection.catch_up()
        return outcomes

    def head(self) -> dict[str, Any] | None:
        with self._ledger() as (app, _, _):
            link = app.ledger_recorder.chain_head()
        return {"position": link.position, "chain_sha256": link.chain_sha256} if link else None

    def kind(self) -> str:
        return "postgresql" if self.url.startswith("postgres") else "sqlite"

    def close(self) -> None:
        if self._open is not None:
            self._open[0].close()
            self._open = None

    @contextmanager
    def _ledger(self) -> Iterator[tuple[LedgerApplication, Ingestor, MRRProjection]]:
        try:
            if self._open is None:
                app = LedgerApplication(self.url)
                self._open = (app, Ingestor(app, parallel=False), MRRProjection(app))
            yield self._open
        except (PersistenceError, OSError) as exc:
            self.close()
            raise LedgerError(
                f"database {redact(self.url)} unavailable: {first_line(exc)}"
            ) from None
