"""The ledger's PostgreSQL store: eventsourcing's factory (its connections bounded), the
recorder (eventsourcing's, writing the ledger's tables in the same transaction, in
PostgreSQL's dialect of `ledger.queries`) and the coordination (advisory locks).

Named in the settings of a postgresql:// ledger (`ledger.settings`), as `ledger.sqlite` is
in those of a sqlite:/// one; imported only then (it loads psycopg).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import wraps
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

from ledger.chain import Link, canonical_rows
from ledger.liveness import WATCH, WatchedConnection, connection_options
from ledger.queries import LedgerQueries
from ledger.recorder import key_rows, rows_of
from ledger.tables import IMMUTABLE, LEDGER_DDL, LEDGER_TABLES
from ledger.treestore import TreeQueries

T = TypeVar("T")
R = TypeVar("R")


class PostgresLedgerFactory(PostgresFactory):
    """eventsourcing's factory, its pool's connections bounded (`ledger.liveness`): the
    connect timeout, TCP keepalives, and the watch over waits for an answer."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        pool.kwargs = {**(pool.kwargs or {}), **connection_options(WATCH.limits)}
        pool.connection_class = WatchedConnection

    def close(self) -> None:
        """The pool closed without waiting long for its workers: one may be connecting to
        a server that does not answer (it is abandoned; its thread ends with its attempt),
        where the pool's own close would wait 5 s more before an error is reported."""
        with suppress(AttributeError):
            self.datastore.pool.close(timeout=0 if WATCH.unanswered() is not None else 1)
        super().close()


def retried_once(method: Callable[..., R]) -> Callable[..., R]:
    """One of eventsourcing's recorder methods, retried once instead of ten times.

    eventsourcing retries a failed call ten times, each time waiting up to the pool's
    timeout for a connection: over a minute before a server that is gone is reported.
    Once is enough for a pooled connection that went stale; none at all when no connection
    could be had in time or the watch gave up on the server (`ledger.liveness`)."""
    plain = getattr(method, "__wrapped__", method)  # eventsourcing's, unwrapped

    @wraps(plain)
    def retried(*args: Any, **kwargs: Any) -> R:
        try:
            return plain(*args, **kwargs)
        except (InterfaceError, OperationalError) as exc:
            if isinstance(exc.__cause__, PoolTimeout) or WATCH.unanswered() is not None:
                raise
        return plain(*args, **kwargs)

    return retried


class PostgresLedgerRecorder(TreeQueries, LedgerQueries, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, writing the event index in the same transaction.

    The index rows are inserted after the stored events, that is after the recorder has
    taken its EXCLUSIVE lock on the events table: writers are serialised there, so a key
    collision between two writers is seen at once rather than risking a deadlock.
    """

    position = "notification_id"
    param = "%s"
    serial = "BIGSERIAL PRIMARY KEY"
    collate = 'COLLATE "C"'
    select_events = retried_once(PostgresApplicationRecorder.select_events)
    select_notifications = retried_once(PostgresApplicationRecorder.select_notifications)
    max_notification_id = retried_once(PostgresApplicationRecorder.max_notification_id)
    writes_in_thread = True  # psycopg waits for the server without the GIL

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(self._ddl(s) for s in LEDGER_DDL)
        self.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION revledger_immutable() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{IMMUTABLE} (% on %)', "
            "TG_OP, TG_TABLE_NAME; END $$"
        ))
        for table in (self.events_table_name, *LEDGER_TABLES):
            self.sql_create_statements.extend(
                SQL(statement).format(Identifier(table)) for statement in (
                    f"CREATE OR REPLACE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE "
                    "ON {} FOR EACH ROW EXECUTE FUNCTION revledger_immutable()",
                    f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {{}} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION revledger_immutable()",
                )
            )

    def _insert_plainly(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's `insert_events` without pipeline mode. psycopg's pipeline can
        hang on a large batch (psycopg#685: the server waits in ClientRead for the rest of
        a message the client believes sent, seen here with Stripe's large events); a
        batch is four statements, whose round trips cost nothing beside its rows. Each
        statement raises its own error at once (a key collision, a role that may not
        write)."""
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    insert_events = retried_once(_insert_plainly)

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The batch inserted from one array per column, sent in binary.

        eventsourcing passes the batch as one array of a composite type, which psycopg
        dumps in Python, escaping every byte of every state: most of the cost of an
        ingest. The table lock and notification are the library's own, and rows are still
        inserted in the batch's order.
        """
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            SQL("INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::bytea[]) "
                "RETURNING notification_id").format(
                Identifier(self.datastore.schema), Identifier(self.events_table_name)
            ),
            [list(column) for column in zip(*(
                (s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events
            ), strict=True)],
        )

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        """Writes the chain links and index rows of the events just inserted."""
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        with curs.connection.cursor(row_factory=tuple_row) as c:
            c.execute(self._HEAD + self._LAST)
            head = Link(*row) if (row := c.fetchone()) else None
            rows = rows_of(stored_events)
            canonical = canonical_rows(positions, rows)  # once, for the chain and the tree
            links = self._links(head, positions, rows, kwargs.get("recorded_at"), canonical)
            c.execute(
                "INSERT INTO event_chain SELECT * FROM unnest(%b::bigint[], %b::text[], "
                "%b::text[])",
                [list(column) for column in zip(*links, strict=True)],
            )
            self._insert_tree(c, self._tree_rows(c, positions, canonical))
            if keys := kwargs.get("keys"):
                c.execute(
                    "INSERT INTO event_keys SELECT * FROM unnest(%b::bigint[], %b::text[], "
                    "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[])",
                    [list(column) for column in zip(*key_rows(positions, keys), strict=True)],
                )
        return positions

    def _insert_tree(self, c: Any, rows: Sequence[tuple]) -> None:
        c.execute(
            "INSERT INTO merkle_tree SELECT * FROM unnest(%b::bigint[], %b::bigint[], "
            "%b::bigint[], %b::text[])",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def _plain(self, c: Any) -> Any:
        return c.connection.cursor(row_factory=tuple_row)

    _index_columns = ("SELECT column_name AS name FROM information_schema.columns "
                      "WHERE table_name = 'event_keys' AND table_schema = current_schema()")

    def _ddl(self, statement: str) -> Any:
        return SQL(statement.replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"))

    def _index_ddl(self) -> list[Any]:
        return [s for s in self.sql_create_statements if "event_keys" in s.as_string(None)]

    def customer_bounds(self, every: int) -> list[str]:
        """None: the customer index is in the database's collation, not byte order, so a
        range of customers in byte order would read the whole index (replays stay whole)."""
        return []

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        with self.datastore.transaction(commit=False) as c, c.connection.cursor(
            row_factory=tuple_row
        ) as raw:
            raw.execute(self._sql(statement), params)
            return raw.fetchall()

    def tables_exist(self, names: Sequence[str]) -> bool:
        with self.datastore.transaction(commit=False) as c:
            return tables_exist(c, names)

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [values]

    def _uuid_param(self, value: UUID) -> Any:
        return value

    def _stream(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        """Rows of one read transaction through a server-side cursor, not fetched whole."""
        return closed_quietly(self._streamed(statement, params))

    def _streamed(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="revledger_stream", row_factory=tuple_row) as cursor,
        ):
            cursor.itersize = 5000
            cursor.execute(self._sql(statement), params)
            yield from cursor


def closed_quietly(rows: Iterator[T]) -> Iterator[T]:
    """`rows` from a generator holding a cursor. Left early (its reader failed, or was
    collected) while the server is gone, closing the cursor fails too; that failure is
    dropped here: the reader's own error says what happened, where Python would print the
    second one as an "Exception ignored" traceback."""
    try:
        for row in rows:  # noqa: UP028 (`yield from` would close `rows` itself, loudly)
            yield row
    except GeneratorExit:
        with suppress(PersistenceError, psycopg.Error):
            rows.close()  # type: ignore[attr-defined]
        raise


def tables_exist(connection: Any, tables: Iterable[str]) -> bool:
    """Whether these tables all exist (in the search path), asked on a psycopg connection
    or cursor. Each owner of tables (the ledger, a projection) asks of its own before
    creating them: once they exist, opening them runs no DDL, so roles without CREATE
    (docs/operations.md) can."""
    names = list(tables)
    row = connection.execute(
        f"SELECT {' AND '.join(['to_regclass(%s) IS NOT NULL'] * len(names))} AS complete",
        names,
    ).fetchone()
    return bool(row["complete"] if isinstance(row, dict) else row[0])


class PostgresCoordination:
    """What the processes sharing one PostgreSQL ledger agree on, by advisory locks on
    connections of its own (outside the recorder's pool): who creates the tables (a
    concurrent `CREATE ... IF NOT EXISTS` can fail on PostgreSQL), and whose turn it is to
    decide a batch and append it."""

    SCHEMA_KEY = 7242416
    TURN_KEY = 7242418

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._turns: Any = None  # the connection holding the writers' turns, once needed
        self._schema: Any = None  # the connection holding the schema lock, while held

    def connect(self) -> Any:
        """A plain autocommit connection, bounded like the pool's (`ledger.liveness`)."""
        env = self.env
        try:
            return WatchedConnection.connect(
                host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"], dbname=env["POSTGRES_DBNAME"],
                autocommit=True, **connection_options(WATCH.limits),
            )
        except psycopg.Error as exc:
            raise OperationalError(str(exc)) from exc

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Held while tables are created (by whoever holds it: `ddl_needed`)."""
        with self.connect() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [self.SCHEMA_KEY])
            self._schema = conn
            try:
                yield
            finally:
                self._schema = None

    def ddl_needed(self, tables: Sequence[str]) -> bool:
        """Unless these tables all exist, asked under the schema lock: once they do,
        opening them runs no DDL, so roles without CREATE (docs/operations.md) can."""
        assert self._schema is not None, "asked under the schema lock"
        return not tables_exist(self._schema, tables)

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._turns is None:
            self._turns = self.connect()
        try:
            self._turns.execute("SELECT pg_advisory_lock(%s)", [self.TURN_KEY])
        except psycopg.Error as exc:
            raise OperationalError(str(exc).strip()) from exc
        try:
            yield
        finally:
            with suppress(psycopg.Error):
                self._turns.execute("SELECT pg_advisory_unlock(%s)", [self.TURN_KEY])

    def close(self) -> None:
        if self._turns is not None:
            self._turns.close()
            self._turns = None
