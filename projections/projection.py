"""Keeping the MRR view current: catch-up after new events, and a rebuild from zero.

Catch-up pulls pages of notifications after the view's tracking position (SQLite has no
push subscription) and writes rows and tracking in one transaction. A customer a page
touches whose history this process still holds (a webhook's customer, met on an earlier
page) gets only the page's events applied to that history, and only the versions they
open or close written; any other is refolded whole, every version from all of its events
up to the page's end. The rebuild writes a replay of every event (`projections.replay`)
in one transaction. Both give the same rows: those of a customer depend only on its events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import resolve_topic

from ledger.application import LedgerApplication
from ledger.batches import batched
from projections.columns import Columns, MRRColumns, owners
from projections.facts import Fact, by_customer_stream, decode_fact
from projections.history import History
from projections.progress import Progress
from projections.versions import Versions, fold_versions, recordings
from projections.view import (
    CustomerChanges,
    CustomerRows,
    MRRView,
    customer_changes,
    customer_rows,
)

if TYPE_CHECKING:
    from projections.replay import Plan

PAGE = 5000
REBUILD_AFTER = 4 * PAGE
KEPT = 256  # customers whose histories a process keeps between pages (webhooks' customers)


Fold = Callable[[list[Fact]], Versions]

# The view of each kind of store (`LedgerApplication.kind`, from `ledger.settings.STORES`),
# imported only when a ledger of that kind is opened (PostgreSQL's loads psycopg).
VIEWS = {
    "sqlite": "projections.sqlite:SQLiteMRRView",
    "postgresql": "projections.postgres:PostgresMRRView",
}


def store_view(app: LedgerApplication) -> MRRView:
    """The MRR view in the ledger's own database, its tables created where missing and
    laid out anew where they are of an older layout (`MRRView.upgrade`)."""
    view: MRRView = app.tracking_recorder(resolve_topic(VIEWS[app.kind]))
    view.upgrade(app.name)
    return view


class MRRProjection:
    """`fold` makes a customer's versions from its facts: `fold_versions`, the fast path
    (a check substitutes a deliberately wrong one to prove `verify` catches it); `plan`
    shares a rebuild between the cores (`projections.replay.PLAN` when None); `view` is
    where the rows go (the store's own, `store_view`, when None; a test gives one that
    fails)."""

    def __init__(self, app: LedgerApplication, fold: Fold = fold_versions,
                 plan: Plan | None = None, view: MRRView | None = None) -> None:
        self.app = app
        self.fold = fold
        self.plan = plan
        self.events = app.ledger_recorder
        self.view = view if view is not None else store_view(app)
        # Histories as of the view's position `_cached_at`, least recently used first.
        self._histories: OrderedDict[str, History] = OrderedDict()
        self._cached_at: int | None = None

    @property
    def position(self) -> int:
        """The last notification the view reflects (0 for none)."""
        return self.view.max_tracking_id(self.app.name) or 0

    def head(self) -> int:
        return self.events.max_notification_id() or 0

    def catch_up(self, on_progress: Progress = lambda done, total: None) -> int:
        """Apply every event recorded after the view's position; returns how many.

        Far behind (more new events than the view holds, and several pages of them), a
        rebuild is cheaper than refolding the touched customers page after page.
        """
        position, head = self.position, self.head()
        if head - position > max(REBUILD_AFTER, position):
            self.rebuild(on_progress)
            return head - position
        applied = 0
        while page := self.events.select_notifications(start=position + 1, limit=PAGE):
            upto = page[-1].id
            touched = self._customers_touched(decode_fact(n.id, n.state) for n in page)
            if self._cached_at != position:
                self._histories.clear()  # another process moved the view: start afresh
            customers, rows, changes = self._page_rows(touched, upto)
            self._cached_at = None  # until the page commits, the histories are ahead
            try:
                self.view.replace_customers(customers, rows, Tracking(self.app.name, upto),
                                            changes)
            except IntegrityError:
                position = self.position  # another process moved the view on: go on from there
                continue
            self._cached_at = upto
            applied += len(page)
            position = upto
            on_progress(applied, applied + max(0, head - upto))
            if upto >= head:  # what came since is the next catch-up's
                break
        return applied

    def _page_rows(self, touched: dict[str, list[Fact]], upto: int
                   ) -> tuple[list[str], list[CustomerRows], list[CustomerChanges]]:
        """The customers to rewrite whole with their rows, and the changes of those whose
        history this process holds (a webhook's next event: only what it moved)."""
        changes, whole = [], []
        for customer, facts in sorted(touched.items()):
            history = self._histories.get(customer)
            if history is None or facts[0].recorded_at == history.recorded_at:
                whole.append(customer)  # not held, or a recording split across pages
                continue
            self._histories.move_to_end(customer)
            for position, recording in recordings(facts):
                history.record(position, recording)
            changes.append(customer_changes(customer, history))
        return whole, list(self._rows(whole, upto, keep=len(touched) <= KEPT)), changes

    def rebuild(self, on_progress: Progress = lambda done, total: None) -> tuple[int, int]:
        """Replace the view by a fold of every event up to the current head, and the query
        engine's columns by the new current rows; returns (head position, customers)."""
        from projections import replay  # forks a worker: loaded only to replay

        self._histories.clear()
        head = self.head()
        columns = Columns()
        # closing: an error stops the replay's worker and removes its spool at once,
        # whoever keeps the error (and with it these frames) afterwards.
        plan = self.plan or replay.PLAN
        with closing(replay.replay(self.app, head, on_progress, plan)) as replayed:
            customers = self.view.rebuild(gathering(replayed, columns),
                                          Tracking(self.app.name, head),
                                          lambda: MRRColumns.gathered(columns).to_bytes())
        return head, customers

    def _customers_touched(self, facts: Iterator[Fact | None]) -> dict[str, list[Fact]]:
        """The facts of a page by the customer they touch (a void, its target's)."""
        touched: dict[str, list[Fact]] = {}
        voids = []
        for fact in facts:
            if fact is None:
                continue
            if fact.customer_id is not None:
                touched.setdefault(fact.customer_id, []).append(fact)
            elif fact.voids is not None:
                voids.append(fact)
        if voids:
            owner = {k.event_id: k.customer_id for k in
                     self.events.select_keys_where({"event_id": [f.voids for f in voids]})}
            for void in voids:
                if customer := owner.get(void.voids):  # type: ignore[arg-type]
                    touched.setdefault(customer, []).append(void)
        for customer_facts in touched.values():
            customer_facts.sort()  # by position
        return touched

    def _rows(self, customers: list[str], upto: int, keep: bool = False
              ) -> Iterator[CustomerRows]:
        """The rows of those of these customers that have events up to `upto`; with
        `keep`, their histories are kept for the next page (the fold's own only)."""
        keep = keep and self.fold is fold_versions
        for chunk in batched(customers, 1000):
            rows = self.events.select_customer_events(chunk, upto)
            for customer, facts in by_customer_stream(rows):
                if not keep:
                    yield customer_rows(customer, self.fold(facts))
                    continue
                history = History()
                for position, recording in recordings(facts):
                    history.record(position, recording)
                history.flush()  # written whole
                self._histories[customer] = history
                if len(self._histories) > KEPT:
                    self._histories.popitem(last=False)
                yield customer_rows(customer, Versions(*history.versions()))


def gathering(rows: Iterable[CustomerRows], columns: Columns) -> Iterator[CustomerRows]:
    """The rows, passed on as they come; their current ones also go into `columns` (no
    second read of the view)."""
    for chunk in batched(rows, 1000):
        numbers: dict[str, int] = {}
        for r in chunk:
            for customer, _, until, paid in r.customers:
                if until is None:
                    numbers[customer] = len(columns.names)
                    columns.customer(customer, paid)
        steps = [row for r in chunk for row in r.steps if row[4] is None]
        columns.steps(owners(numbers, steps), [row[1] for row in steps],
                      [row[2] for row in steps], [row[5] for row in steps])
        attributes = [row for r in chunk for row in r.attributes if row[3] is None]
        columns.attributes(owners(numbers, attributes), [row[1] for row in attributes],
                           [row[4] for row in attributes])
        yield from chunk

