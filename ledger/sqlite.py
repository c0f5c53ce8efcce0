"""The ledger's SQLite store: eventsourcing's factory (its connections tuned), the recorder
(eventsourcing's, writing the ledger's tables in the same transaction, in SQLite's dialect
of `ledger.queries`) and the coordination (a lock file for the writers' turns).

Named in the settings of a sqlite:/// ledger (`ledger.settings`), as `ledger.postgres` is
in those of a postgresql:// one.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from typing import Any

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteFactory,
)

from ledger.chain import Link, canonical_rows
from ledger.queries import LedgerQueries
from ledger.recorder import Row, key_rows, rows_of
from ledger.tables import IMMUTABLE, LEDGER_DDL, LEDGER_TABLES
from ledger.treestore import TreeQueries

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


class SQLiteLedgerRecorder(TreeQueries, LedgerQueries, SQLiteApplicationRecorder):
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
        canonical = canonical_rows(positions, rows)  # once, for the chain and the tree
        links = self._links(head, positions, rows, recorded_at, canonical)
        c.executemany("INSERT INTO event_chain VALUES (?, ?, ?)", links)
        self._insert_tree(c, self._tree_rows(c, positions, canonical))
        if keys:
            c.executemany(f"INSERT INTO event_keys VALUES ({','.join('?' * 7)})",
                          key_rows(positions, keys))

    def _insert_tree(self, c: Any, rows: Sequence[tuple]) -> None:
        c.executemany("INSERT INTO merkle_tree VALUES (?, ?, ?, ?)", rows)

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """One parameter, a JSON array, whatever the number of values: the statement's
        text stays the same, so sqlite3 prepares it once, not once per batch of ingest
        (which made the look-ups of a batch's ids and streams a third dearer). SQLite's
        JSON functions end a string at a NUL character: ids never hold one (`ledger.events`)."""
        return f"{column} IN (SELECT value FROM json_each(?))", [orjson.dumps(values).decode()]

    def _cursor(self, transaction: Any) -> Any:
        return transaction.sqlite_cursor

    def tables_exist(self, names: Sequence[str]) -> bool:
        test, params = self._in("name", sorted(set(names)))
        rows = self._rows(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND {test}",
                          params)
        return rows[0][0] == len(set(names))

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


class SQLiteCoordination:
    """What the processes sharing one SQLite ledger agree on: SQLite's own lock already
    serialises table creation; writers take turns by an exclusive lock on a file beside
    the database (none where that file cannot be created, e.g. on a read-only file system,
    where nothing can be written anyway)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.path = env["SQLITE_DBNAME"] + "-writers.lock"
        self._fd: int | None = None

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        yield None

    def ddl_needed(self, tables: Sequence[str]) -> bool:
        """Always: `CREATE ... IF NOT EXISTS` under SQLite's own lock costs next to
        nothing, and brings the triggers and indexes of a file made by an older revledger
        up to date."""
        return True

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._fd is None:
            with suppress(OSError):
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
