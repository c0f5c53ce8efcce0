"""The MRR view on PostgreSQL (imported only for a postgresql:// ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL

from ledger.postgres import closed_quietly, retried_once, tables_exist
from projections.view import DDL, TABLES, MRRView


class PostgresMRRView(MRRView, PostgresTrackingRecorder):
    placeholder = "%s"
    insert_tracking = retried_once(PostgresTrackingRecorder.insert_tracking)
    max_tracking_id = retried_once(PostgresTrackingRecorder.max_tracking_id)
    has_tracking_id = retried_once(PostgresTrackingRecorder.has_tracking_id)
    _columns = ("SELECT column_name AS name FROM information_schema.columns "
                "WHERE table_name = 'mrr_steps' AND table_schema = current_schema()")

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # Binary ("C") collation: the same order as SQLite and Python, whatever the locale.
        self.sql_create_statements.extend(
            SQL(s.replace("customer_id TEXT", 'customer_id TEXT COLLATE "C"')
                .replace("BLOB", "BYTEA").replace(" WITHOUT ROWID", "")) for s in DDL
        )

    def create_table(self) -> None:
        """The view's tables and its tracking table (one transaction), unless they all
        exist: opening a complete view then runs no DDL, so roles without CREATE (ingest,
        analyst) can. Checked here, where they are created, not by the ledger."""
        with self.datastore.transaction(commit=False) as c:
            complete = tables_exist(c, (self.tracking_table_name, *TABLES))
        if not complete:
            super().create_table()

    def _stream(self, c: Any, statement: str) -> Iterator[tuple]:
        return closed_quietly(self._streamed(c, statement))

    def _streamed(self, c: Any, statement: str) -> Iterator[tuple]:
        # a server-side cursor: rows arrive a batch at a time
        with c.connection.cursor(name="revledger_view", row_factory=tuple_row) as raw:
            raw.itersize = 10_000
            raw.execute(statement)
            yield from raw

    @property
    def _tracking_table(self) -> str:  # type: ignore[override]
        return self.tracking_table_name

    def _cursor(self) -> Any:
        return _locked(self.datastore)


class _locked:
    """A PostgreSQL write transaction that first takes the view's advisory lock, so
    concurrent catch-ups queue instead of interleaving their deletes and inserts."""

    def __init__(self, datastore: Any) -> None:
        self.manager = datastore.transaction(commit=True)

    def __enter__(self) -> Any:
        cursor = self.manager.__enter__()
        cursor.execute("SELECT pg_advisory_xact_lock(7242417)")
        return cursor

    def __exit__(self, *exc: Any) -> Any:
        return self.manager.__exit__(*exc)

