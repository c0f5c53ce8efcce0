"""The ledger's application: eventsourcing's, on the database a URL names.

Besides the events, it offers what several processes sharing one ledger must agree on: the
schema lock (tables created once, by one of them) and the writers' turns (a batch decided
on the state it is appended to), each kept by the database's own means (`Coordination`).
The persistence and the coordination it runs on are picked by `ledger.settings`
(`ledger.sqlite` or `ledger.postgres`), which also names the store's kind; it asks the
recorder only what `ledger.recorder.LedgerRecorder` says, and the coordination only what
`Coordination` says, so it names no database itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import resolve_topic

from ledger.aggregates import LEDGER_ID, Ledger
from ledger.held import create_source_tables
from ledger.recorder import LedgerRecorder
from ledger.settings import env_for_url, store_kind
from ledger.tables import LEDGER_TABLES


class Coordination(Protocol):
    """How processes sharing one ledger take turns: `ledger.sqlite.SQLiteCoordination`,
    `ledger.postgres.PostgresCoordination`."""

    def schema_lock(self) -> AbstractContextManager[None]: ...
    def ddl_needed(self, tables: Sequence[str]) -> bool: ...
    def turn(self) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...


class LedgerApplication(Application):
    """The event-sourced application that owns the ledger's stored events."""

    name = "revledger"

    def __init__(self, url: str, *, create_tables: bool = True) -> None:
        env = env_for_url(url)
        if not create_tables:
            env["CREATE_TABLE"] = "no"
        self.url = url
        self.kind = store_kind(url)  # "sqlite", "postgresql": the projections' view by it
        self._creates_tables = create_tables
        # schema lock and writers' turns, the database's own way (`ledger.settings`)
        self.coordination: Coordination = resolve_topic(env["COORDINATION_TOPIC"])(env)
        with self.schema_lock():
            if not self.coordination.ddl_needed(LEDGER_TABLES):
                # No DDL for the ledger: roles without CREATE (ingest, analyst) can
                # open it. A projection's tables are its own (`tracking_recorder`).
                env["CREATE_TABLE"] = "no"
            super().__init__(env=env)
            if create_tables:
                self.ledger_recorder.upgrade_index()
                # what sources deliver besides events (this lock held already)
                create_source_tables(self, locked=True)
        if create_tables and self.ledger_recorder.tree_behind():
            with self.writing():  # a ledger from before the Merkle tree: its leaves, once
                self.ledger_recorder.upgrade_tree()

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Serialise table creation between processes. Taken once at a time: taken
        again while held, it would wait for itself."""
        with self.coordination.schema_lock():
            yield

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Writers take turns to decide a batch and append it, across processes: a batch is
        then decided on the state it is appended to. (The store would refuse a stale batch
        anyway; turns keep a large batch from losing to small ones again and again.)"""
        with self.coordination.turn():
            yield

    def close(self) -> None:
        self.coordination.close()
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

