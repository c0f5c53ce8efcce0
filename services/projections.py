"""Projection upkeep: catch-up after ingest, rebuild on demand."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import orjson
from eventsourcing.persistence import OperationalError, ProgrammingError

from ledger.application import LedgerApplication
from projections.columns import UNREADABLE, UNREADABLE_ROWS
from projections.engine import MRRIndex
from projections.progress import Progress
from projections.projection import MRRProjection
from projections.rates import Quote, Rates, stored_quotes
from services.errors import LedgerError
from services.ledger import first_line, open_ledger, reporting_currency

if TYPE_CHECKING:
    from projections.replay import Plan  # forks workers: loaded only to replay


@dataclass(frozen=True)
class RebuildResult:
    events: int
    customers: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Display only."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild_projections(url: str, on_progress: Progress = lambda d, t: None,
                        plan: Plan | None = None) -> RebuildResult:
    """`plan` shares the replay between the cores (the product's unless given)."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        head, customers = MRRProjection(app, plan=plan).rebuild(on_progress)
    return RebuildResult(head, customers, time.perf_counter() - started)


def index_from_rows(projection: MRRProjection, position: int) -> MRRIndex:
    """Query columns built from the rows the view held at `position`. Rows that cannot be
    read were edited outside revledger: a one-line error says how to repair them, where a
    traceback would not."""
    try:
        return projection.view.read(MRRIndex.from_rows, position)
    except UNREADABLE_ROWS as exc:
        raise LedgerError(f"the projection's rows cannot be read ({first_line(exc)}): "
                          "run `revledger verify`, then `revledger replay`") from None


class Current(NamedTuple):
    index: MRRIndex
    position: int  # the last event the index reflects


def caught_up(app: LedgerApplication, projection: MRRProjection | None = None
              ) -> MRRProjection:
    """The projection (`app`'s own unless given), brought up to date. One that is behind
    (an ingest killed between recording and projecting) and that this role may not write
    (an analyst's) is a one-line error saying what to run, not the database's "permission
    denied"."""
    projection = projection or MRRProjection(app)
    try:
        projection.catch_up()
    except ProgrammingError as exc:
        raise LedgerError(
            f"the projection is behind the ledger (event {projection.position} of "
            f"{projection.head()}) and this role may not bring it up to date "
            f"({first_line(exc)}): run the last `revledger ingest` again, or "
            "`revledger replay`, as the ingest role or the owner") from None
    return projection


def behind(app: LedgerApplication) -> bool:
    """Whether events were recorded that the projection does not reflect yet."""
    projection = MRRProjection(app)
    return projection.position < projection.head()


def current_index(app: LedgerApplication, projection: MRRProjection | None = None
                  ) -> Current:
    """The projection (`app`'s own unless given), caught up, as query columns answering in
    the reporting currency at the rates held at the same position: from the stored
    snapshots when they reflect the current position (and can be read), else built from
    the rows (the events) and stored for next time."""
    projection = caught_up(app, projection)
    position = projection.position
    rates = Rates(_current_quotes(app, projection, position))
    if data := projection.view.load_snapshot(position):
        with suppress(*UNREADABLE):  # a damaged cache is built again from the rows
            return Current(MRRIndex.from_bytes(data).priced(rates, reporting_currency(app)),
                           position)
    # The rows as of `position`: another process may catch the view up meanwhile, and the
    # columns must be those of the position they are stored (and reported) under.
    index = index_from_rows(projection, position)
    if (data := index.to_bytes()) is not None:
        _cache(projection, position, data)
    return Current(index.priced(rates, reporting_currency(app)), position)


def _current_quotes(app: LedgerApplication, projection: MRRProjection, position: int
                    ) -> list[Quote]:
    """The rates held at `position`, from their cache if it reflects it."""
    if data := projection.view.load_cache(position, "rates"):
        with suppress(ValueError, TypeError):  # a damaged cache is read again
            return [Quote(*row) for row in orjson.loads(data)]
    quotes = stored_quotes(app.ledger_recorder.iter_rate_events(position))
    _cache(projection, position, orjson.dumps([list(q) for q in quotes]), "rates")
    return quotes


def _cache(projection: MRRProjection, position: int, data: bytes, name: str = "mrr") -> None:
    # A cache: a role that may only read (or a read-only file) answers without it.
    with suppress(ProgrammingError, OperationalError):
        projection.view.save_snapshot(position, data, name)
