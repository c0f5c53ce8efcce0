"""Event store wiring: eventsourcing's SQLite and PostgreSQL persistence, plus an index.

The index (`event_keys`) holds one row per canonical event: its position (primary key), its
`event_id` (unique) and a hash of its content. It is written by the recorder in the same
transaction as the stored events, so the database itself makes ingest idempotent: two
writers recording one event collide on the key and exactly one commits. Rows of both
tables are only ever inserted (an index of an earlier layout is laid out again once, by
`upgrade_index`).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteFactory,
)

from ledger.aggregates import LEDGER_ID, Ledger
from ledger.chain import Link, extend, recorded_at
from ledger.settings import env_for_url

KEY_COLUMNS = (
    "position",
    "event_id",
    "content_sha256",
    "type",
    "customer_id",
    "subscription_id",
    "voids",
)


@dataclass(frozen=True)
class KeyRow:
    """What the index knows of one recorded canonical event."""

    position: int  # of the stored event, in the ledger's total order
    event_id: str
    content_sha256: str
    type: str
    customer_id: str | None
    subscription_id: str | None
    voids: str | None


@dataclass(frozen=True)
class EventRow:
    """A stored canonical event with its position in the ledger's total order."""

    position: int
    originator_id: UUID
    originator_version: int
    state: bytes
    chain_sha256: str | None


PAGE_SIZE = 16384  # of a new ledger file; one made before keeps its own
WAL_BYTES = 40 << 20  # written to the WAL between checkpoints


class _TunedSQLitePool(SQLiteConnectionPool):
    """Connections with a page cache large enough for the index B-trees, which take keys
    in random order (SQLite's 2 MB default sends most inserts to the disk), and a WAL
    checkpointed every 40 MB rather than every 4 MB: a batch dirties pages all over those
    B-trees, and checkpointing after nearly every batch halved ingest throughput.

    A new ledger file gets 16 KiB pages, not SQLite's 4 KiB: a batch's random keys then
    dirty fewer pages, so each commit writes less to the WAL (ingest +5% at 20k customers,
    +18% at 100k; a replay reads about as fast). The size is fixed once the file has a
    table, and must be set before eventsourcing turns on WAL."""

    def _create_connection(self) -> SQLiteConnection:
        if not self.is_sqlite_memory_mode and not _has_content(self.db_name):
            with closing(sqlite3.connect(self.db_name, uri=True)) as new:
                new.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                new.execute("PRAGMA journal_mode = WAL")
        connection = super()._create_connection()
        cursor = connection.cursor()
        cursor.execute("PRAGMA page_size")
        page_size = cursor.fetchone()[0]
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_BYTES // page_size}")
        return connection


def _has_content(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


class SQLiteLedgerFactory(SQLiteFactory):
    """eventsourcing's SQLite persistence, with tuned connections."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        old = self.datastore.pool
        old.close()
        self.datastore.pool = _TunedSQLitePool(db_name=old.db_name, lock_timeout=old.lock_timeout)


class LedgerQueries:
    """The ledger's reads beyond eventsourcing's, written once for both stores: SQL uses
    `?` placeholders and `{position}` for the notification id; a dialect supplies the rest."""

    events_table_name: str
    position = "rowid"
    collate = ""  # a byte-order collation where the default is not one

    def _stream(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        raise NotImplementedError

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        raise NotImplementedError

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """A membership test and its parameters."""
        return f"{column} IN ({','.join('?' * len(values))})", values

    def _uuid_param(self, value: UUID) -> Any:
        return value.hex

    def _join(self) -> str:
        return f"{self.events_table_name} e JOIN event_keys k ON k.position = e.{self.position}"

    _index_columns = "SELECT name FROM pragma_table_info('event_keys')"

    def _ddl(self, statement: str) -> Any:
        """A statement of LEDGER_DDL as this database takes it."""
        return statement

    def _index_ddl(self) -> list[Any]:
        """The statements creating the index's table, its indexes and its triggers."""
        raise NotImplementedError

    def upgrade_index(self) -> bool:
        """Lay out again an index written by a revledger from before it referred to events
        by position (it named their aggregate and version): the same rows, keyed by the
        events' positions, in one transaction. The events are not touched; the index is
        derived from them. True if there was one to upgrade."""
        with self.datastore.transaction(commit=False) as c:
            if not self._old_index(c):
                return False
        with self.datastore.transaction(commit=True) as c:
            # A write first: SQLite's write lock is then held, so the layout read next is
            # current even if another process has just upgraded the index.
            c.execute(self._ddl(_event_keys_table("event_keys_v2")))
            if not self._old_index(c):
                c.execute("DROP TABLE event_keys_v2")
                return False
            c.execute(
                f"INSERT INTO event_keys_v2 SELECT e.{self.position}, k.event_id, "
                "k.content_sha256, k.type, k.customer_id, k.subscription_id, k.voids "
                f"FROM event_keys k JOIN {self.events_table_name} e "
                "ON e.originator_id = k.originator_id "
                "AND e.originator_version = k.originator_version"
            )
            c.execute("DROP TABLE event_keys")
            c.execute("ALTER TABLE event_keys_v2 RENAME TO event_keys")
            for statement in self._index_ddl():
                c.execute(statement)
        return True

    def _old_index(self, c: Any) -> bool:
        c.execute(self._index_columns)
        return any((row["name"] if isinstance(row, dict) else row[0]) == "originator_id"
                   for row in c.fetchall())

    def select_keys_where(self, tests: dict[str, Iterable[str]]) -> list[KeyRow]:
        """Index rows whose column is among the given values, for any of the columns: one
        statement, so one consistent snapshot even while other writers commit."""
        clauses, params = [], []
        for column, values in tests.items():
            if values := list(values):
                clause, more = self._in(column, values)
                clauses.append(clause)
                params.extend(more)
        if not clauses:
            return []
        statement = (f"SELECT {', '.join(KEY_COLUMNS)} FROM event_keys "
                     f"WHERE {' OR '.join(clauses)}")
        return [KeyRow(*row) for row in self._rows(statement, params)]

    def select_heads(self, ids: Sequence[UUID]) -> list[tuple[UUID, int, str]]:
        """(aggregate id, version, customer id) of those of these streams that exist: the
        customer is read from the event that opened the stream."""
        if not ids:
            return []
        test, params = self._in("e.originator_id", [self._uuid_param(i) for i in ids])
        t = self.events_table_name
        rows = self._rows(
            f"SELECT e.originator_id, (SELECT MAX(m.originator_version) FROM {t} m "
            f"WHERE m.originator_id = e.originator_id), e.state FROM {t} e "
            f"WHERE {test} AND e.originator_version = 1",
            params,
        )
        heads = []
        for stream_id, version, state in rows:
            opened = orjson.loads(state)
            heads.append((_uuid(stream_id), version, opened.get("customer_id", opened["key"])))
        return heads

    def select_events_by(
        self, filters: dict[str, str], upto: int | None = None
    ) -> list[EventRow]:
        """Canonical events matching index columns (up to a position), in recorded order."""
        assert set(filters) <= set(KEY_COLUMNS)
        tests = [f"k.{column} = ?" for column in filters]
        params: list[Any] = list(filters.values())
        if upto is not None:
            tests.append(f"e.{self.position} <= ?")
            params.append(upto)
        return [
            EventRow(row[0], _uuid(row[1]), row[2], bytes(row[3]), row[4])
            for row in self._rows(
                f"SELECT e.{self.position}, e.originator_id, e.originator_version, e.state, "
                f"c.chain_sha256 FROM {self._join()} "
                f"LEFT JOIN event_chain c ON c.position = e.{self.position} "
                f"{'WHERE ' + ' AND '.join(tests) if tests else ''} "
                f"ORDER BY e.{self.position}",
                params,
            )
        ]

    _HEAD = "SELECT position, recorded_at, chain_sha256 FROM event_chain "
    _LAST = "ORDER BY position DESC LIMIT 1"

    def chain_head(self, *, known_at: str | None = None, upto: int | None = None) -> Link | None:
        """The last link of the chain, or of its prefix recorded by `known_at`, or of its
        prefix up to position `upto`."""
        if known_at is not None:
            rows = self._rows(self._HEAD + "WHERE recorded_at <= ? " + self._LAST, [known_at])
        elif upto is not None:
            rows = self._rows(self._HEAD + "WHERE position <= ? " + self._LAST, [upto])
        else:
            rows = self._rows(self._HEAD + self._LAST, [])
        return Link(*rows[0]) if rows else None

    def _links(
        self,
        head: Link | None,
        positions: Sequence[int],
        rows: Sequence[Row],
        recorded: str | None,
    ) -> list[tuple]:
        """The chain rows of a transaction's events; refused (and the transaction rolled
        back, to be decided again) if they were stamped before the head."""
        chained = (
            (p, *row, recorded or recorded_at(row[3]))
            for p, row in zip(positions, rows, strict=True)
        )
        try:
            return list(extend(head, chained))
        except ValueError as exc:
            raise IntegrityError(str(exc)) from None

    def count_keys(self) -> int:
        return self._rows("SELECT COUNT(*) FROM event_keys", [])[0][0]

    def iter_customer_events(
        self, upto: int, first: str | None = None, after: str | None = None
    ) -> Iterator[tuple[str, int, bytes]]:
        """(customer_id, position, state) of every event up to `upto`, by customer; only
        of customers from `first` on and before `after`, if given (byte order)."""
        tests, params = [f"e.{self.position} <= ?"], [upto]
        if first is not None:
            tests.append(f"k.customer_id {self.collate} >= ?")
            params.append(first)
        if after is not None:
            tests.append(f"k.customer_id {self.collate} < ?")
            params.append(after)
        return self._stream(  # states as stored: bytes (or text, which orjson reads too)
            f"SELECT k.customer_id, e.{self.position}, e.state FROM {self._join()} "
            f"WHERE {' AND '.join(tests)} ORDER BY k.customer_id {self.collate}",
            params,
        )

    def customer_bounds(self, every: int) -> list[str]:
        """Customer ids cutting the customers' events into runs of about `every` events,
        in byte order: where to split a replay between processes. Each is found by
        skipping `every` entries of the customer index from the last."""
        bounds: list[str] = []
        while row := self._rows(
            "SELECT customer_id FROM event_keys WHERE customer_id > ? "
            "ORDER BY customer_id LIMIT 1 OFFSET ?", [bounds[-1] if bounds else "", every - 1]
        ):
            bounds.append(row[0][0])
        return bounds

    def iter_states(self, upto: int) -> Iterator[tuple[int, bytes]]:
        """(position, state) of every stored event up to `upto`, in order."""
        for position, state in self._stream(
            f"SELECT {self.position}, state FROM {self.events_table_name} "
            f"WHERE {self.position} <= ? ORDER BY {self.position}",
            [upto],
        ):
            yield position, bytes(state)

    def iter_chain(self) -> Iterator[tuple]:
        """Every stored event beside its chain link, by position; a side is all None
        where the other has no partner (a deleted row, say)."""
        e, t = self.position, self.events_table_name
        for row in self._stream(
            f"SELECT e.{e}, e.originator_id, e.originator_version, e.topic, e.state, "
            f"c.position, c.recorded_at, c.chain_sha256 FROM {t} e "
            f"FULL OUTER JOIN event_chain c ON c.position = e.{e} "
            f"ORDER BY COALESCE(e.{e}, c.position)",
            [],
        ):
            state = row[4]
            if isinstance(state, str):  # SQLite keeps whatever type a writer stored
                state = state.encode()
            yield (*row[:4], None if state is None else bytes(state), *row[5:])

    def select_customer_events(self, customers: Sequence[str], upto: int) -> list[tuple]:
        """(customer_id, position, state) of these customers' events up to `upto`."""
        if not customers:
            return []
        test, params = self._in("k.customer_id", list(customers))
        return [
            (row[0], row[1], bytes(row[2]))
            for row in self._rows(
                f"SELECT k.customer_id, e.{self.position}, e.state FROM {self._join()} "
                f"WHERE {test} AND e.{self.position} <= ? "
                f"ORDER BY k.customer_id, e.{self.position}",
                [*params, upto],
            )
        ]


class SQLiteLedgerRecorder(LedgerQueries, SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder, writing the event index in the same transaction."""

    # `executemany` takes the GIL back for every row: a writer thread would hand the GIL
    # to and fro with the thread deciding the next batch, row by row. Ingest writes in a
    # process of its own instead (`insert_rows`).
    writes_in_thread = False

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *LEDGER_DDL,
            *(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE}'); END"
                for table in (self.events_table_name, *LEDGER_TABLES)
                for op in ("UPDATE", "DELETE")
            ),
        ]

    def _index_ddl(self) -> list[Any]:
        return [s for s in self.construct_create_table_statements() if "event_keys" in s]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        self._insert_rows(c, rows_of(stored_events), keys=kwargs.get("keys"),
                          recorded_at=kwargs.get("recorded_at"))

    def insert_rows(
        self, rows: Sequence[Row], *, keys: Sequence[tuple] | None = None,
        recorded_at: str | None = None,
    ) -> None:
        """`insert_events` for events already encoded as rows: what ingest's writer process
        receives (rebuilding each `StoredEvent` and its UUID would add 15% to its work)."""
        with self.datastore.transaction(commit=True) as c:
            self._insert_rows(c, rows, keys=keys, recorded_at=recorded_at)

    def _insert_rows(
        self, c: Any, rows: Sequence[Row], *, keys: Sequence[tuple] | None = None,
        recorded_at: str | None = None,
    ) -> None:
        """One `executemany` per table, the events first (which takes the write lock).

        Positions are rowids: the writer holds the lock and rows are never deleted, so a
        batch's rowids follow the largest one; its chain links and index rows are keyed by
        them. They are not returned (eventsourcing's application recorder inserts row by
        row to return them); no caller uses them.
        """
        ids = [row[0].hex() for row in rows]
        c.executemany(
            self.insert_events_statement,
            [(i, *row[1:]) for i, row in zip(ids, rows, strict=True)],
        )
        c.execute(f"SELECT MAX(rowid) FROM {self.events_table_name}")
        last = c.fetchone()[0]
        positions = range(last - len(rows) + 1, last + 1)
        c.execute(self._HEAD + self._LAST)
        head = Link(*row) if (row := c.fetchone()) else None
        links = self._links(head, positions, rows, recorded_at)
        c.executemany("INSERT INTO event_chain VALUES (?, ?, ?)", links)
        if keys:
            c.executemany(f"INSERT INTO event_keys VALUES ({','.join('?' * 7)})",
                          key_rows(positions, keys))

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """One parameter, a JSON array, whatever the number of values: the statement's
        text stays the same, so sqlite3 prepares it once, not once per batch of ingest
        (which made the look-ups of a batch's ids and streams a third dearer). SQLite's
        JSON functions end a string at a NUL character: ids never hold one (`ledger.events`)."""
        return f"{column} IN (SELECT value FROM json_each(?))", [orjson.dumps(values).decode()]

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        with self.datastore.transaction(commit=False) as c:
            raw = c.sqlite_cursor  # plain tuples: faster than sqlite3.Row
            raw.row_factory = None
            raw.execute(statement, params)
            return raw.fetchall()

    def _stream(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        """Rows of one read transaction, fetched a page at a time, not whole."""
        with self.datastore.transaction(commit=False) as c:
            raw = c.sqlite_cursor
            raw.row_factory = None
            raw.execute(statement, params)
            while rows := raw.fetchmany(5000):
                yield from rows


Row = tuple[bytes, int, str, bytes]  # a stored event: aggregate id bytes, version, topic, state


def rows_of(stored_events: Sequence[StoredEvent]) -> list[Row]:
    return [(s.originator_id.bytes, s.originator_version, s.topic, s.state)
            for s in stored_events]


def key_rows(positions: Sequence[int], keys: Sequence[tuple]) -> list[tuple]:
    """The index rows of stored events at these positions, from `keys`: the rest of each
    event's row, one per event."""
    return [(p, *k) for p, k in zip(positions, keys, strict=True)]


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


LEDGER_TABLES = ("event_keys", "event_chain")
IMMUTABLE = "revledger: recorded events are never updated or deleted"


def _event_keys_table(name: str) -> str:
    """The index refers to each event by its position: joined to the events on their
    primary key, and a customer's index entries are small and in recorded order."""
    return (f"CREATE TABLE IF NOT EXISTS {name} (position INTEGER PRIMARY KEY, "
            "event_id TEXT NOT NULL UNIQUE, content_sha256 TEXT NOT NULL, type TEXT NOT NULL, "
            "customer_id TEXT, subscription_id TEXT, voids TEXT)")


LEDGER_DDL = [
    _event_keys_table("event_keys"),
    "CREATE INDEX IF NOT EXISTS event_keys_customer ON event_keys (customer_id, position)",
    # At most one void per event, enforced by the database for concurrent writers.
    "CREATE UNIQUE INDEX IF NOT EXISTS event_keys_voids ON event_keys (voids) "
    "WHERE voids IS NOT NULL",
    # One link per stored event (see ledger.chain), in position order.
    "CREATE TABLE IF NOT EXISTS event_chain (position INTEGER PRIMARY KEY, "
    "recorded_at TEXT NOT NULL, chain_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS event_chain_recorded ON event_chain (recorded_at)",
]


class LedgerRecorder(Protocol):
    """What the ledger needs of its recorder beyond eventsourcing's ApplicationRecorder
    (implemented for SQLite here and for PostgreSQL in `ledger.postgres`)."""

    writes_in_thread: bool  # whether ingest gains by writing in a thread of its own

    def select_notifications(self, start: int | None, limit: int) -> Sequence[Any]: ...
    def max_notification_id(self) -> int | None: ...
    def select_keys_where(self, tests: dict[str, Iterable[str]]) -> list[KeyRow]: ...
    def select_heads(self, ids: Sequence[UUID]) -> list[tuple[UUID, int, str]]: ...
    def select_events_by(
        self, filters: dict[str, str], upto: int | None = None
    ) -> list[EventRow]: ...
    def count_keys(self) -> int: ...
    def upgrade_index(self) -> bool: ...
    def chain_head(
        self, *, known_at: str | None = None, upto: int | None = None
    ) -> Link | None: ...
    def select_customer_events(self, customers: Sequence[str], upto: int) -> list[tuple]: ...
    def iter_customer_events(
        self, upto: int, first: str | None = None, after: str | None = None
    ) -> Iterator[tuple[str, int, bytes]]: ...
    def customer_bounds(self, every: int) -> list[str]: ...
    def iter_states(self, upto: int) -> Iterator[tuple[int, bytes]]: ...
    def iter_chain(self) -> Iterator[tuple]: ...


class LedgerApplication(Application):
    """The event-sourced application that owns the ledger's stored events."""

    name = "revledger"

    def __init__(self, url: str, *, create_tables: bool = True) -> None:
        env = env_for_url(url)
        if not create_tables:
            env["CREATE_TABLE"] = "no"
        self.url = url
        self.kind = "postgresql" if env["PERSISTENCE_MODULE"].endswith("postgres") else "sqlite"
        self._turns: _Turns | None = None
        with self.schema_lock() as conn:
            if conn is not None and _schema_complete(conn):
                # No DDL at all: roles without CREATE (ingest, analyst) can open the ledger.
                env["CREATE_TABLE"] = "no"
            super().__init__(env=env)
            if create_tables:
                self.ledger_recorder.upgrade_index()

    @contextmanager
    def schema_lock(self) -> Iterator[Any]:
        """Serialise table creation between processes: on PostgreSQL, concurrent
        `CREATE ... IF NOT EXISTS` can fail (SQLite's own lock already serialises it).
        Yields the PostgreSQL connection holding the lock (None for SQLite)."""
        if self.kind != "postgresql":
            yield None
            return
        with self.connect() as conn:
            conn.execute("SELECT pg_advisory_lock(7242416)")
            yield conn

    def connect(self) -> Any:
        """A plain psycopg connection (autocommit) to this PostgreSQL ledger."""
        import psycopg

        env = env_for_url(self.url)
        try:
            return psycopg.connect(
                host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"], dbname=env["POSTGRES_DBNAME"],
                connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]), autocommit=True,
            )
        except psycopg.Error as exc:
            raise OperationalError(str(exc)) from exc

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Writers take turns to decide a batch and append it, across processes: a batch is
        then decided on the state it is appended to. (The store would refuse a stale batch
        anyway; turns keep a large batch from losing to small ones again and again.)"""
        if self._turns is None:
            self._turns = _Turns(self)
        with self._turns.held():
            yield

    def close(self) -> None:
        if self._turns is not None:
            self._turns.close()
            self._turns = None
        super().close()

    @property
    def ledger_recorder(self) -> LedgerRecorder:
        return self.recorder  # type: ignore[return-value]

    def reporting_currency(self, currency: str | None = None) -> str:
        """The ledger's reporting currency, opening the ledger (default USD) on first use;
        `currency`, if given, must be it."""
        try:
            ledger = self.repository.get(LEDGER_ID)
        except AggregateNotFoundError:
            with suppress(IntegrityError):  # another writer opened it first
                self.save(Ledger.open(currency or "USD"))
            ledger = self.repository.get(LEDGER_ID)
        if currency and currency != ledger.currency:
            raise ValueError(
                f"this ledger's reporting currency is {ledger.currency}, not {currency}"
            )
        return ledger.currency

    def tracking_recorder(self, cls: type | None = None) -> Any:
        """A tracking recorder on the same database, for projections."""
        with self.schema_lock():
            return self.factory.tracking_recorder(cls)  # type: ignore[arg-type]


def _schema_complete(conn: Any) -> bool:
    """Whether a PostgreSQL ledger's tables all exist (the view's last table is created
    last): then opening it needs no CREATE privilege."""
    row = conn.execute(
        "SELECT to_regclass('event_chain') IS NOT NULL "
        "AND to_regclass('engine_snapshot') IS NOT NULL"
    ).fetchone()
    return bool(row[0])


class _Turns:
    """The writers' turn: a PostgreSQL advisory lock, or an exclusive lock on a file
    beside the SQLite database (none if that file cannot be created, e.g. on a read-only
    file system, where nothing can be written anyway)."""

    KEY = 7242418

    def __init__(self, app: LedgerApplication) -> None:
        self.conn = app.connect() if app.kind == "postgresql" else None
        self.fd: int | None = None
        if self.conn is None:
            path = env_for_url(app.url)["SQLITE_DBNAME"] + "-writers.lock"
            with suppress(OSError):
                self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def held(self) -> Iterator[None]:
        if self.conn is not None:
            import psycopg

            try:
                self.conn.execute("SELECT pg_advisory_lock(%s)", [self.KEY])
            except psycopg.Error as exc:
                raise OperationalError(str(exc).strip()) from exc
            try:
                yield
            finally:
                with suppress(psycopg.Error):
                    self.conn.execute("SELECT pg_advisory_unlock(%s)", [self.KEY])
        elif self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        else:
            yield

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.fd is not None:
            os.close(self.fd)
