"""The materialised MRR projection, in the same database as the events.

Tables: `mrr_steps` (each customer's MRR change points, per currency billed: contract v2
converts only when a figure is asked for), `attribute_steps` (its
attributes over time) and `customers` (first paid instant). They are bitemporal
(`projections.versions`): each row holds for the positions `[known_from, known_until)`,
so the current rows (`known_until` NULL) and the rows as known at any past position are
read alike. They are written by an eventsourcing tracking recorder: the rows of a page
of notifications and the tracking record of its last notification commit in one
transaction, so each event is applied exactly once, and a crash leaves the view at the
previous page. A page refolds every version of each customer it touches, so backdated
events and voids correct the past, not only the tail: it rewrites the customer's rows
whole, or, for a customer whose history the process holds from the page before (a
webhook's next event), writes only what the new versions change (`CustomerChanges`,
`MRRProjection._page_rows`).

The statements are written once, in SQLite's dialect (`MRRView`); each database's view
(`projections.sqlite`, `projections.postgres`) supplies the rest: its placeholders, how
rows are streamed, its tracking table, how its columns are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any, NamedTuple, TypeVar

import orjson
from eventsourcing.persistence import Tracking

from ledger.batches import batched
from projections.history import History
from projections.versions import Versions

VIEW_TABLES = ("mrr_steps", "attribute_steps", "customers")
TABLES = (*VIEW_TABLES, "engine_snapshot")  # all that `DDL` creates: the rows, and a cache
_READS = (  # {held}: the rows' range holds the position asked for
    "SELECT customer_id, first_paid_at FROM customers WHERE {held} ORDER BY customer_id",
    "SELECT customer_id, currency, effective_at, mrr FROM mrr_steps WHERE {held} "
    "ORDER BY customer_id, currency, effective_at",
    "SELECT customer_id, effective_at, attributes FROM attribute_steps WHERE {held} "
    "ORDER BY customer_id, effective_at",
)
_KEYS = ("customer_id, currency, effective_at, known_from", "customer_id, effective_at, known_from",
         "customer_id, known_from")
_CLOSE_KEYS = ("customer_id = ? AND currency = ? AND effective_at = ? AND known_from = ?",
               "customer_id = ? AND effective_at = ? AND known_from = ?",
               "customer_id = ? AND known_from = ?")
_CURRENT = "known_until IS NULL"
_AT = "known_from <= {p} AND (known_until IS NULL OR known_until > {p})"
T = TypeVar("T")

# On SQLite the tables are WITHOUT ROWID (PostgreSQL's DDL drops that): rows live in their
# primary key's B-tree, one B-tree to write per row instead of two.
DDL = [
    "CREATE TABLE IF NOT EXISTS mrr_steps (customer_id TEXT NOT NULL, currency TEXT NOT NULL, "
    "effective_at TEXT NOT NULL, known_from BIGINT NOT NULL, known_until BIGINT, "
    "mrr TEXT NOT NULL, PRIMARY KEY (customer_id, currency, effective_at, known_from))"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS attribute_steps (customer_id TEXT NOT NULL, "
    "effective_at TEXT NOT NULL, known_from BIGINT NOT NULL, known_until BIGINT, "
    "attributes TEXT NOT NULL, PRIMARY KEY (customer_id, effective_at, known_from))"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS customers (customer_id TEXT NOT NULL, "
    "known_from BIGINT NOT NULL, known_until BIGINT, first_paid_at TEXT, "
    "PRIMARY KEY (customer_id, known_from)) WITHOUT ROWID",
    # The query engine's columns, as of a tracking position: a cache of the current rows.
    "CREATE TABLE IF NOT EXISTS engine_snapshot (name TEXT PRIMARY KEY, "
    "position BIGINT NOT NULL, data BLOB NOT NULL)",
]


ViewRows = tuple[list[tuple], list[tuple], list[tuple]]  # customers, steps, attributes


class CustomerRows(NamedTuple):
    """One customer's rows in the three tables, with their ranges."""

    steps: list[tuple[str, str, str, int, int | None, str]]  # customer, currency, at, ...
    attributes: list[tuple[str, str, int, int | None, str]]
    customers: list[tuple[str, int, int | None, str | None]]


def customer_rows(customer: str, versions: Versions) -> CustomerRows:
    return CustomerRows(
        [(customer, currency, at, since, until, str(mrr))
         for (currency, at), mrr, since, until in versions.steps],
        [(customer, at, since, until, _attributes(attrs))
         for at, attrs, since, until in versions.attributes],
        [(customer, since, until, paid) for _, paid, since, until in versions.first_paid],
    )


def _attributes(attributes: dict[str, str]) -> str:
    return orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode()


class CustomerChanges(NamedTuple):
    """What one customer's new versions change in the view: rows to insert, and the
    `known_until` of stored rows they close, as (until, customer, currency, effective_at,
    known_from) for `mrr_steps`, (until, customer, effective_at, known_from) for
    `attribute_steps` and (until, customer, known_from) for `customers`."""

    rows: CustomerRows
    closed: tuple[list[tuple], list[tuple], list[tuple]]


def customer_changes(customer: str, history: History) -> CustomerChanges:
    """The changes of `history` since it was last written (`History.flush`)."""
    steps, steps_closed, attributes, attributes_closed, first_paid, paid_closed = (
        history.flush())
    return CustomerChanges(
        customer_rows(customer, Versions(steps, attributes, first_paid)),
        ([(until, customer, currency, at, since)
          for (currency, at), since, until in steps_closed],
         [(until, customer, at, since) for at, since, until in attributes_closed],
         [(until, customer, since) for _, since, until in paid_closed]),
    )


def table_rows(rows: Iterable[CustomerRows]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The rows of several customers, table by table (in `VIEW_TABLES` order)."""
    steps, attributes, customers = [], [], []
    for r in rows:
        steps.extend(r.steps)
        attributes.extend(r.attributes)
        customers.extend(r.customers)
    return steps, attributes, customers


class MRRView:
    """Dialect-neutral part: SQL is written with `?` and adapted by `_sql`. A database's
    view mixes it into eventsourcing's tracking recorder and supplies `placeholder`,
    `_tracking_table`, `_columns` (the columns of `mrr_steps`, each row's first or `name`)
    and `_stream`."""

    datastore: Any
    placeholder: str
    _tracking_table: str
    _columns: str

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)

    def _cursor(self) -> Any:
        return self.datastore.transaction(commit=True)

    def _insert(self, c: Any, rows: Iterable[CustomerRows]) -> None:
        for table, table_rows_ in zip(VIEW_TABLES, table_rows(rows), strict=True):
            if table_rows_:
                marks = ", ".join("?" * len(table_rows_[0]))
                c.executemany(self._sql(f"INSERT INTO {table} VALUES ({marks})"), table_rows_)

    def upgrade(self, application_name: str) -> None:
        """Empty a view laid out before its rows had ranges (or currencies), at position
        0, in the new layout: the next catch-up refolds it from the events."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._columns)
            columns = {row["name"] if isinstance(row, dict) else row[0] for row in c.fetchall()}
        if {"known_from", "currency"} <= columns:
            return
        with self._cursor() as c:
            for table in VIEW_TABLES:
                c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute("DELETE FROM engine_snapshot")
            c.execute(self._sql(f"DELETE FROM {self._tracking_table} "
                                "WHERE application_name = ?"), (application_name,))
        self.create_table()

    def replace_customers(
        self, customers: list[str], rows: list[CustomerRows], tracking: Tracking,
        changes: Iterable[CustomerChanges] = (),
    ) -> None:
        """Rewrite these customers' rows, apply the `changes` of others, and record the
        tracking position, atomically."""
        changes = list(changes)
        with self._cursor() as c:
            for table in VIEW_TABLES if customers else ():
                c.executemany(self._sql(f"DELETE FROM {table} WHERE customer_id = ?"),
                              [(customer,) for customer in customers])
            for n, (table, key) in enumerate(zip(VIEW_TABLES, _CLOSE_KEYS, strict=True)):
                if updates := [row for change in changes for row in change.closed[n]]:
                    c.executemany(self._sql(f"UPDATE {table} SET known_until = ? WHERE {key}"),
                                  updates)
            self._insert(c, [*rows, *(change.rows for change in changes)])
            self._insert_tracking(c, tracking)

    def rebuild(self, rows: Iterator[CustomerRows], tracking: Tracking,
                columns: Callable[[], bytes | None]) -> int:
        """Replace the whole view (and its tracking) in one transaction, with the query
        columns `columns()` gives once every row is in; returns how many customers it now
        holds."""
        chunks = batched(rows, 2000)
        # The first chunk is read before the write transaction opens: reading may start
        # with a long sort, and a transaction idle meanwhile could be timed out.
        first = next(chunks, [])
        with self._cursor() as c:
            for table in TABLES:  # the query columns of the old rows too
                c.execute(f"DELETE FROM {table}")
            c.execute(self._sql(f"DELETE FROM {self._tracking_table} WHERE application_name = ?"),
                      (tracking.application_name,))
            customers = 0
            for chunk in chain([first], chunks):
                self._insert(c, chunk)
                customers += len(chunk)
            if tracking.notification_id:
                self._insert_tracking(c, tracking)
            if (data := columns()) is not None:
                self._insert_snapshot(c, tracking.notification_id, data)
        return customers

    def read(self, build: Callable[[Iterator, Iterator, Iterator], T],
             position: int | None = None) -> T:
        """`build(customers, steps, attributes)` over row iterators of one transaction,
        each by customer then time; they must be consumed in that order. The current
        rows, or those the view held at `position`."""
        held = _CURRENT if position is None else _AT.format(p=int(position))
        with self.datastore.transaction(commit=False) as c:
            return build(*(self._stream(c, statement.format(held=held))
                           for statement in _READS))

    def load(self, position: int | None = None) -> ViewRows:
        """The rows `read` gives, whole (for comparisons)."""
        return self.read(lambda *parts: tuple(list(part) for part in parts), position)  # type: ignore[return-value]

    def stored(self) -> ViewRows:
        """Every row of each table with its range, in `VIEW_TABLES` order, by key."""
        with self.datastore.transaction(commit=False) as c:
            return tuple(  # type: ignore[return-value]
                list(self._stream(c, f"SELECT * FROM {table} ORDER BY {key}"))
                for table, key in zip(VIEW_TABLES, _KEYS, strict=True))

    def stored_of(self, customers: list[str]) -> ViewRows:
        """These customers' rows with their ranges, in `VIEW_TABLES` order, by key."""
        if not customers:
            return [], [], []
        marks = ", ".join("?" * len(customers))
        with self.datastore.transaction(commit=False) as c:
            out = []
            for table, key in zip(VIEW_TABLES, _KEYS, strict=True):
                c.execute(self._sql(f"SELECT * FROM {table} WHERE customer_id IN ({marks}) "
                                    f"ORDER BY {key}"), customers)
                out.append([tuple(row.values()) if isinstance(row, dict) else tuple(row)
                            for row in c.fetchall()])
        return out[0], out[1], out[2]

    def customer_count(self) -> int:
        """How many customers have rows in any of the tables."""
        union = " UNION ".join(f"SELECT customer_id FROM {table}" for table in VIEW_TABLES)
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COUNT(*) FROM ({union}) AS ids")
            row = c.fetchone()
        return int(row["count"] if isinstance(row, dict) else row[0])

    def _stream(self, c: Any, statement: str) -> Iterator[tuple]:
        """The rows of `statement`, read in transaction `c` a batch at a time."""
        raise NotImplementedError

    def save_snapshot(self, position: int, data: bytes, name: str = "mrr") -> None:
        """Store a cache of what the queries read at `position`: the engine's columns
        ("mrr"), or the exchange rates held then ("rates")."""
        with self._cursor() as c:
            c.execute(self._sql("DELETE FROM engine_snapshot WHERE name = ?"), (name,))
            self._insert_snapshot(c, position, data, name)

    def _insert_snapshot(self, c: Any, position: int, data: bytes, name: str = "mrr") -> None:
        c.execute(self._sql("INSERT INTO engine_snapshot VALUES (?, ?, ?)"),
                  (name, position, data))

    def load_snapshot(self, position: int) -> bytes | None:
        """The stored engine columns if they reflect exactly `position`."""
        return self.load_cache(position, "mrr")

    def load_cache(self, position: int, name: str) -> bytes | None:
        """The stored cache `name` if it reflects exactly `position`."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._sql("SELECT data FROM engine_snapshot WHERE name = ? "
                                "AND position = ?"), (name, position))
            row = c.fetchone()
        if row is None:
            return None
        return bytes(row["data"] if isinstance(row, dict) else row[0])

