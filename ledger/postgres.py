"""The ledger's PostgreSQL persistence: eventsourcing's recorder plus the event index.

Imported only for a postgresql:// ledger (it loads psycopg).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger.chain import Link
from ledger.queries import LedgerQueries, key_rows, rows_of
from ledger.tables import IMMUTABLE, LEDGER_DDL, LEDGER_TABLES
from ledger.treestore import TreeQueries


class PostgresLedgerRecorder(TreeQueries, LedgerQueries, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, writing the event index in the same transaction.

    The index rows are inserted after the stored events, that is after the recorder has
    taken its EXCLUSIVE lock on the events table: writers are serialised there, so a key
    collision between two writers is seen at once rather than risking a deadlock.
    """

    position = "notification_id"
    param = "%s"
    collate = 'COLLATE "C"'
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

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The batch inserted from one array per column, sent in binary.

        eventsourcing passes the batch as one array of a composite type, which psycopg
        dumps in Python, escaping every byte of every state: most of the cost of an
        ingest. The table lock and notification are the library's own, and rows are still
        inserted in the batch's order. The lock syncs on its own (a nested pipeline): a
        role that may not write fails there with its own error, not as an aborted pipeline
        the next statement would report.
        """
        with curs.connection.pipeline():
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
        # A nested pipeline syncs on exit, so a key collision raises here, inside the
        # recorder's error handling, rather than at commit.
        with curs.connection.pipeline(), curs.connection.cursor(row_factory=tuple_row) as c:
            c.execute(self._HEAD + self._LAST)
            head = Link(*row) if (row := c.fetchone()) else None
            rows = rows_of(stored_events)
            links = self._links(head, positions, rows, kwargs.get("recorded_at"))
            c.execute(
                "INSERT INTO event_chain SELECT * FROM unnest(%b::bigint[], %b::text[], "
                "%b::text[])",
                [list(column) for column in zip(*links, strict=True)],
            )
            self._insert_tree(c, self._tree_rows(c, positions, rows))
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

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        with self.datastore.transaction(commit=False) as c, c.connection.cursor(
            row_factory=tuple_row
        ) as raw:
            raw.execute(statement.replace("?", "%s"), params)
            return raw.fetchall()

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [values]

    def _uuid_param(self, value: UUID) -> Any:
        return value

    def _stream(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        """Rows of one read transaction through a server-side cursor, not fetched whole."""
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="revledger_stream", row_factory=tuple_row) as cursor,
        ):
            cursor.itersize = 5000
            cursor.execute(statement.replace("?", "%s"), params)
            yield from cursor


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
