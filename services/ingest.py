"""Ingest from any billing source (ledger.sources): a file or export (`ingest_feed`), or
deliveries over HTTP (`LedgerWriter`). The source translates; recording is written once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from ledger.application import LedgerApplication
from ledger.checks import check_batch, check_line
from ledger.feed import Channel, Checked, Rejected
from ledger.held import SourceStore
from ledger.ingest import Ingestor, IngestSummary
from ledger.rules import Outcome
from ledger.settings import redact, store_kind
from ledger.sources import (
    Held,
    Ignored,
    Learned,
    RefusedDelivery,
    Source,
    channel,
    source_named,
)
from projections.projection import MRRProjection
from services.errors import LedgerError
from services.held import (
    as_held,
    catalogue,
    keep,
    open_source,
    rejected_held,
    retry_held,
)
from services.ledger import DATABASE_ERRORS, first_line, open_ledger, trouble
from services.projections import behind, current_index


@dataclass(frozen=True)
class IngestResult:
    summary: IngestSummary
    seconds: float  # recording the events
    projection_seconds: float  # bringing the projection up to date afterwards
    ignored: int = 0  # records of types that carry no revenue (e.g. a Stripe invoice)
    held: int = 0  # records kept in the quarantine (`revledger quarantine list`)
    released: int = 0  # held records (of this import or before) recorded at its end

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
    on_held: Callable[[Rejected], None] = lambda r: None,
) -> IngestResult:
    """Record every good record of a file or export from `source` (canonical JSON Lines
    unless named, e.g. "stripe" for Stripe Event objects); report each bad one to
    `on_reject`, whether the source could not translate it or ingest refused it.

    A source with a quarantine (Stripe) holds what it cannot map yet, and what the ledger
    refuses of it, instead of rejecting it (`on_held` hears of each): kept verbatim with
    its reason, and mapped again at the end of the import, once every object it learned
    from the export (Stripe's discounts and coupons) is known. A file the source refuses
    whole (canonical lines that are CSV) is one `LedgerError`, nothing of it recorded."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        billing = source_named(source)
        keeps = billing.settings or billing.learns or billing.quarantines
        store = SourceStore(app) if keeps else None
        if store is not None:
            billing = open_source(store, source)  # under this ledger's settings
        parsed = billing.parse(feed, catalogue(store, source) if store else None)  # lazy
        untranslated = ignored = 0
        learned: list[tuple[str, dict]] = []
        held: list[tuple[str, str, bytes, dict | None]] = []

        def lines() -> Iterator[tuple[int, bytes]]:
            nonlocal untranslated, ignored
            try:
                for item in parsed:
                    if isinstance(item, tuple):
                        yield item
                    elif isinstance(item, Ignored):
                        ignored += 1
                    elif isinstance(item, Learned):
                        learned.extend(item.objects)
                    elif isinstance(item, Held):
                        held.append(as_held(item))
                        on_held(Rejected(item.line, item.event_id, item.reason, item.raw))
                    else:
                        untranslated += 1
                        on_reject(item)
            except RefusedDelivery as exc:  # the file as a whole: nothing of it recorded
                raise LedgerError(str(exc)) from None

        refusals = 0

        def refused(reject: Rejected) -> None:
            nonlocal refusals
            if not billing.quarantines:
                on_reject(reject)
            else:  # the ledger cannot take it now (a currency, a conflict): held, not lost
                refusals += 1
                held.append(rejected_held(reject, billing))
                on_held(reject)

        ingestor = Ingestor(app)
        summary = ingestor.ingest(lines(), refused, on_batch,
                                  check=partial(check_batch, channel=channel(source)))
        released = 0
        if store is not None:
            summary.rejected -= refusals
            keep(store, source, learned, held)
            if billing.quarantines:
                released = len(retry_held(app, ingestor, source).recorded)
        recorded = time.perf_counter()
        # Also when nothing was new: a re-run after a kill between recording and
        # projecting finds every event a duplicate, and must still project them.
        if summary.accepted or released or behind(app):
            current_index(app)  # queries then find the projection and its columns current
    summary.rejected += untranslated
    return IngestResult(summary, recorded - started, time.perf_counter() - recorded,
                        ignored=ignored, held=len(held), released=released)


def record_lines(
    url: str,
    lines: Iterable[tuple[int, bytes]],
    on_reject: Callable[[Rejected], None] = lambda r: None,
) -> IngestResult:
    """Record numbered canonical lines that a source translated outside the ledger (the
    periods of a CSV file), then bring the projection up to date."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        summary = Ingestor(app).ingest(lines, on_reject)
        recorded = time.perf_counter()
        if summary.accepted:
            current_index(app)
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
    channel: Channel
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
        self._sources: dict[str, Source] = {}
        self._objects: dict[str, dict[str, Mapping[str, Any] | None]] = {}

    def deliver(self, source: str, body: bytes, headers: Mapping[str, str]) -> Delivered:
        """One request from `source` (a name in ledger.sources): the source checks its
        signature, if it signs, and translates it; its events are then recorded like any
        other request's. Raises `RefusedDelivery` (`SignatureError`) before anything is
        recorded, `LedgerError` when the database is unavailable.

        A source with a quarantine (Stripe) never has an event refused: what it cannot map
        yet, or what the ledger cannot take (a conflict), is held with its reason (status
        `quarantined`). What a source learns (a discount) is kept, and lets held records
        be recorded at once."""
        billing = self._source(source)
        if not (billing.quarantines or billing.learns):
            delivery = billing.delivery(body, headers)
            if delivery.ignored:
                return Delivered([], ignored=True)
            return Delivered(self.record(delivery.lines, source))
        delivery = billing.delivery(body, headers, partial(self._lookup, source))
        held = [as_held(h) for h in delivery.held]
        new = 0
        if delivery.learned or held:
            with self._writing, self._ledger() as (app, _, _):
                new = keep(SourceStore(app), source, delivery.learned, held)
        outcomes = self.record(delivery.lines, source) if delivery.lines else []
        refused = [o for o in outcomes if o.status not in ("accepted", "duplicate")
                   and billing.quarantines]
        if refused:
            with self._writing, self._ledger() as (app, _, _):
                SourceStore(app).hold(source, [rejected_held(Rejected(
                    o.line, o.event_id, o.reason or o.status, delivery.lines[o.line - 1]),
                    billing) for o in refused])
        if new:
            with self._writing, self._ledger() as (app, ingestor, projection):
                if retry_held(app, ingestor, source).recorded:
                    projection.catch_up()
        outcomes = [replace(o, status="quarantined", reason=o.reason or o.status)
                    if o in refused else o for o in outcomes]
        outcomes += [Outcome(h.line, h.event_id, "quarantined", h.reason)
                     for h in delivery.held]
        if not outcomes:
            return Delivered([], ignored=True)
        return Delivered(outcomes)

    def _source(self, name: str) -> Source:
        """The source `name` with its secret, under this ledger's settings if it has any
        (read once: they never change)."""
        if name not in self._sources:
            if source_named(name).settings:
                with self._writing, self._ledger() as (app, _, _):
                    self._sources[name] = open_source(SourceStore(app), name,
                                                      self._secrets.get(name))
            else:
                self._sources[name] = source_named(name, self._secrets.get(name))
        return self._sources[name]

    def _lookup(self, source: str, object_id: str) -> Mapping[str, Any] | None:
        """An object learned from `source`: from this server's cache, else the ledger."""
        objects = self._objects.setdefault(source, {})
        if object_id not in objects:
            with self._writing, self._ledger() as (app, _, _):
                objects.update(SourceStore(app).objects(source, [object_id]))
        return objects.get(object_id)

    def record(self, lines: list[bytes], source: str = "canonical") -> list[Outcome]:
        """Each line's outcome, numbered from 1 within this request, its lines checked as
        `source`'s (its limits, its id namespace)."""
        request = _Request(lines, channel(source))
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

        def check(batch: list[tuple[int, bytes]]) -> list[Checked | Rejected]:
            """Each line checked as its own request's channel's (requests from several
            sources share the group's batch)."""
            return [check_line(n, raw, owner[n][0].channel) for n, raw in batch if raw.strip()]

        try:
            with self._ledger() as (_, ingestor, projection):
                summary = ingestor.ingest(numbered, on_outcome=route, check=check)
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
        return store_kind(self.url)

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
                f"database {redact(self.url)} unavailable: {trouble(exc, self.url)}"
            ) from None
