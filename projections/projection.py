"""Keeping the MRR view current: catch-up after new events, and a rebuild from zero.

Catch-up pulls pages of notifications after the view's tracking position (SQLite has no
push subscription), refolds every version of every customer a page touches from all of
that customer's events up to the page's end, and writes rows and tracking in one
transaction. The rebuild writes a replay of every event (`projections.replay`) in one
transaction. Both give the same rows: those of a customer depend only on its events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError, Tracking

from ledger.application import LedgerApplication
from ledger.batches import batched
from projections.engine import Columns, owners
from projections.facts import Fact, by_customer_stream, decode_fact
from projections.progress import Progress
from projections.versions import Versions, fold_versions
from projections.view import CustomerRows, SQLiteMRRView, customer_rows

if TYPE_CHECKING:
    from projections.replay import Plan

PAGE = 5000
REBUILD_AFTER = 4 * PAGE


Fold = Callable[[list[Fact]], Versions]


class MRRProjection:
    """`fold` makes a customer's versions from its facts: `fold_versions`, the fast path
    (a check substitutes a deliberately wrong one to prove `verify` catches it); `plan`
    shares a rebuild between the cores (`projections.replay.PLAN` when None)."""

    def __init__(self, app: LedgerApplication, fold: Fold = fold_versions,
                 plan: Plan | None = None) -> None:
        self.app = app
        self.fold = fold
        self.plan = plan
        self.events = app.ledger_recorder
        if app.kind == "sqlite":
            self.view = app.tracking_recorder(SQLiteMRRView)
        else:
            from projections.postgres import PostgresMRRView  # loads psycopg

            self.view = app.tracking_recorder(PostgresMRRView)
        self.view.upgrade(app.name)

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
            customers = sorted(self._customers_touched(decode_fact(n.id, n.state) for n in page))
            rows = list(self._rows(customers, upto))
            try:
                self.view.replace_customers(customers, rows, Tracking(self.app.name, upto))
            except IntegrityError:
                position = self.position  # another process moved the view on: go on from there
                continue
            applied += len(page)
            position = upto
            on_progress(applied, applied + max(0, head - upto))
        return applied

    def rebuild(self, on_progress: Progress = lambda done, total: None) -> tuple[int, int]:
        """Replace the view by a fold of every event up to the current head, and the query
        engine's columns by the new current rows; returns (head position, customers)."""
        from projections import replay  # forks a worker: loaded only to replay

        head = self.head()
        columns = Columns()
        # closing: an error stops the replay's worker and removes its spool at once,
        # whoever keeps the error (and with it these frames) afterwards.
        plan = self.plan or replay.PLAN
        with closing(replay.replay(self.app, head, on_progress, plan)) as replayed:
            customers = self.view.rebuild(gathering(replayed, columns),
                                          Tracking(self.app.name, head),
                                          lambda: columns.index().to_bytes())
        return head, customers

    def _customers_touched(self, facts: Iterator[Fact | None]) -> set[str]:
        customers: set[str] = set()
        targets = []
        for fact in facts:
            if fact is None:
                continue
            if fact.customer_id is not None:
                customers.add(fact.customer_id)
            elif fact.voids is not None:
                targets.append(fact.voids)
        voided = self.events.select_keys_where({"event_id": targets})
        customers.update(k.customer_id for k in voided if k.customer_id)
        return customers

    def _rows(self, customers: list[str], upto: int) -> Iterator[CustomerRows]:
        """The rows of those of these customers that have events up to `upto`."""
        for chunk in batched(customers, 1000):
            rows = self.events.select_customer_events(chunk, upto)
            for customer, facts in by_customer_stream(rows):
                yield customer_rows(customer, self.fold(facts))


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
        steps = [row for r in chunk for row in r.steps if row[3] is None]
        columns.steps(owners(numbers, steps), [row[1] for row in steps],
                      [row[4] for row in steps])
        attributes = [row for r in chunk for row in r.attributes if row[3] is None]
        columns.attributes(owners(numbers, attributes), [row[1] for row in attributes],
                           [row[4] for row in attributes])
        yield from chunk


def read_facts(app: LedgerApplication, upto: int | None = None) -> Iterator[Fact]:
    """Every canonical fact of the ledger (up to a position) in recorded order, streamed."""
    recorder = app.ledger_recorder
    if upto is None:
        upto = recorder.max_notification_id() or 0
    for position, state in recorder.iter_states(upto):
        if fact := decode_fact(position, state):
            yield fact
