"""Ingest from any billing source (ledger.sources): a file or export (`ingest_feed`), or
deliveries over HTTP (`LedgerWriter`). The source translates; recording is written once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from ledger.application import LedgerApplication
from ledger.feed import Rejected
from ledger.ingest import Ingestor, IngestSummary
from ledger.rules import Outcome
from ledger.settings import redact
from ledger.sources import Ignored, source_named
from projections.projection import MRRProjection
from services.errors import LedgerError
from services.ledger import DATABASE_ERRORS, first_line, open_ledger
from services.projections import current_index


@dataclass(frozen=True)
class IngestResult:
    summary: IngestSummary
    seconds: float  # recording the events
    projection_seconds: float  # bringing the projection up to date afterwards
    ignored: int = 0  # records of types that carry no revenue (e.g. a Stripe invoice)

    @property
    def events_per_second(self) -> float:
        """Display only: records handled (accepted + duplicate + rejected) per second."""
        handled = self.summary.accepted + self.summary.duplicates + self.summary.rejected
        return handled / self.seconds if self.seconds > 0 else 0.0


def ingest_feed(
    url: str,
    feed: Iterable[bytes],
    *,
    source: str = "canonical",
    on_reject: Callable[[Rejected], None] = lambda r: None,
    on_batch: Callable[[IngestSummary], None] = lambda s: None,
) -> IngestResult:
    """Record every good record of a file or export from `source` (canonical JSON Lines
    unless named, e.g. "stripe" for Stripe Event objects); report each bad one to
    `on_reject`, whether the source could not translate it or ingest refused it."""
    items = source_named(source).parse(feed)  # lazy: the file is read as it is recorded
    untranslated = ignored = 0

    def lines() -> Iterator[tuple[int, bytes]]:
        nonlocal untranslated, ignored
        for item in items:
            if isinstance(item, tuple):
                yield item
            elif isinstance(item, Ignored):
                ignored += 1
            else:
                untranslated += 1
                on_reject(item)

    result = _record(url, lines(), on_reject, on_batch)
    result.summary.rejected += untranslated
    return replace(result, ignored=ignored)


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


@dataclass(frozen=True)
class Delivered:
    """What became of one delivery: each event's outcome, numbered from 1 within it; or
    `ignored` (no outcomes) when the source sent something that carries no revenue."""

    outcomes: list[Outcome]
    ignored: bool = False


@dataclass
class _Request:
    lines: list[bytes]
    outcomes: list[Outcome] | None = None
    error: LedgerError | None = None


class LedgerWriter:
    """A ledger kept open to record many small requests (the HTTP server).

    Requests that arrive while another is being written are recorded together, in one
    batch (group commit): every request is answered after its events and the projection's
    catch-up have committed, and concurrent clients share transactions instead of queueing
    for one each. A lost database connection closes the ledger; the next request opens it
    again.
    """

    def __init__(self, url: str, secrets: Mapping[str, str | None] | None = None) -> None:
        """`secrets`: source name -> the secret its deliveries are signed with."""
        self.url = url
        self._secrets = dict(secrets or {})
        self._writing = threading.Lock()
        self._queueing = threading.Lock()
        self._queue: list[_Request] = []
        self._open: tuple[LedgerApplication, Ingestor, MRRProjection] | None = None

    def deliver(self, source: str, body: bytes, headers: Mapping[str, str]) -> Delivered:
        """One request from `source` (a name in ledger.sources): the source checks its
        signature, if it signs, and translates it; its events are then recorded like any
        other request's. Raises `RefusedDelivery` (`SignatureError`) before anything is
        recorded, `LedgerError` when the database is unavailable."""
        delivery = source_named(source, self._secrets.get(source)).delivery(body, headers)
        if delivery.ignored:
            return Delivered([], ignored=True)
        return Delivered(self.record(delivery.lines))

    def record(self, lines: list[bytes]) -> list[Outcome]:
        """Each line's outcome, numbered from 1 within this request."""
        request = _Request(lines)
        with self._queueing:
            self._queue.append(request)
        with self._writing:
            if request.outcomes is None and request.error is None:
                with self._queueing:
                    group, self._queue = self._queue, []
                self._write(group)
        if request.error is not None:
            raise request.error
        assert request.outcomes is not None
        return request.outcomes

    def _write(self, group: list[_Request]) -> None:
        numbered, owner = [], {}
        for request in group:
            request.outcomes = []
            for local, line in enumerate(request.lines, start=1):
                numbered.append((len(numbered) + 1, line))
                owner[len(numbered)] = (request, local)

        def route(outcome: Outcome) -> None:
            request, local = owner[outcome.line]
            request.outcomes.append(replace(outcome, line=local))  # type: ignore[union-attr]

        try:
            with self._ledger() as (_, ingestor, projection):
                summary = ingestor.ingest(numbered, on_outcome=route)
                if summary.accepted:
                    projection.catch_up()
        except LedgerError as exc:
            for request in group:
                request.outcomes, request.error = None, exc
        except Exception as exc:  # answer every request of the group, not only this one
            for request in group:
                request.outcomes = None
                request.error = LedgerError(f"could not record: {first_line(exc)}")
            raise

    def head(self) -> dict[str, Any] | None:
        with self._writing, self._ledger() as (app, _, _):
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
        except DATABASE_ERRORS as exc:
            self.close()
            raise LedgerError(
                f"database {redact(self.url)} unavailable: {first_line(exc)}"
            ) from None
