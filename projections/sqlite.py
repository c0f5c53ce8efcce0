"""The MRR view on SQLite: eventsourcing's tracking recorder with the view's tables
(`projections.view`), read in SQLite's own way. The view of a sqlite:/// ledger, as
`projections.postgres` is of a postgresql:// one (`projections.projection.VIEWS`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eventsourcing.sqlite import SQLiteTrackingRecorder

from projections.view import DDL, MRRView


class SQLiteMRRView(MRRView, SQLiteTrackingRecorder):
    placeholder = "?"
    _tracking_table = "tracking"  # eventsourcing's name on SQLite
    _columns = "SELECT name FROM pragma_table_info('mrr_steps')"

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *DDL]

    def _stream(self, c: Any, statement: str) -> Iterator[tuple]:
        raw = c.sqlite_cursor.connection.cursor()  # plain tuples: faster than sqlite3.Row
        raw.row_factory = None
        raw.execute(statement)
        while rows := raw.fetchmany(10_000):
            yield from rows
