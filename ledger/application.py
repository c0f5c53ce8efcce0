"""The ledger's application: eventsourcing's, on the database a URL names.

Besides the events, it owns what several processes sharing one ledger must agree on: the
schema lock (tables created once, by one of them) and the writers' turns (a batch decided
on the state it is appended to). The persistence it runs on is picked by
`ledger.settings` (`ledger.sqlite` or `ledger.postgres`); it asks the recorder only what
`ledger.queries.LedgerRecorder` says.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.aggregates import LEDGER_ID, Ledger
from ledger.held import create_source_tables
from ledger.queries import LedgerRecorder
from ledger.settings import env_for_url
from ledger.tables import LEDGER_TABLES


class LedgerApplication(Application):
    """The event-sourced application that owns the ledger's stored events."""

    name = "revledger"

    def __init__(self, url: str, *, create_tables: bool = True) -> None:
        env = env_for_url(url)
        if not create_tables:
            env["CREATE_TABLE"] = "no"
        self.url = url
        self.kind = "postgresql" if "postgres" in env["PERSISTENCE_MODULE"] else "sqlite"
        self._creates_tables = create_tables
        self._turns: _Turns | None = None
        with self.schema_lock() as conn:
            if conn is not None:
                from ledger.postgres import tables_exist  # a postgresql:// ledger loads it

                if tables_exist(conn, LEDGER_TABLES):
                    # No DDL for the ledger: roles without CREATE (ingest, analyst) can
                    # open it. A projection's tables are its own (`tracking_recorder`).
                    env["CREATE_TABLE"] = "no"
            super().__init__(env=env)
            if create_tables:
                self.ledger_recorder.upgrade_index()
                create_source_tables(self, conn)  # what sources deliver besides events
        if create_tables and self.ledger_recorder.tree_behind():
            with self.writing():  # a ledger from before the Merkle tree: its leaves, once
                self.ledger_recorder.upgrade_tree()

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

        from ledger.liveness import WATCH, WatchedConnection, connection_options

        env = env_for_url(self.url)
        try:
            return WatchedConnection.connect(
                host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"], dbname=env["POSTGRES_DBNAME"],
                autocommit=True, **connection_options(WATCH.limits),
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
        """A tracking recorder on the same database, for a projection, its tables created
        under the schema lock: with the ledger's, or, where the ledger's existed already,
        by the recorder's own `create_table`, which decides whether its tables are missing
        (the ledger knows none of them). None are created for a ledger opened with
        `create_tables=False`."""
        with self.schema_lock():
            recorder = self.factory.tracking_recorder(cls)  # type: ignore[arg-type]
            if self._creates_tables and not self.factory.env_create_table():
                recorder.create_table()
            return recorder


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
