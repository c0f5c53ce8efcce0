"""The ledger's PostgreSQL persistence: eventsourcing's recorder plus the event index.

Imported only for a postgresql:// ledger (it loads psycopg).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL

from ledger.store import INDEX_DDL, KEY_COLUMNS, EventRow, KeyRow, key_row, where_clause


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, writing the event index in the same transaction.

    The index rows are inserted after the stored events, that is after the recorder has
    taken its EXCLUSIVE lock on the events table: writers are serialised there, so a key
    collision between two writers is seen at once rather than risking a deadlock.
    """

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(
            SQL(s.replace("TEXT NOT NULL, originator_version", "uuid NOT NULL, originator_version"))
            for s in INDEX_DDL
        )

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Any:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        keys = kwargs.get("keys") or {}
        rows = [
            (k[0], k[1], s.originator_id, s.originator_version, *k[2:])
            for s in stored_events
            if (k := keys.get((s.originator_id, s.originator_version))) is not None
        ]
        if rows:
            # A nested pipeline syncs on exit, so a key collision raises here, inside the
            # recorder's error handling, rather than at commit.
            with curs.connection.pipeline(), curs.connection.cursor() as c:
                c.executemany(f"INSERT INTO event_keys VALUES ({','.join(['%s'] * 8)})", rows)
        return positions

    def select_keys(self, column: str, values: Iterable[str]) -> list[KeyRow]:
        values = list(values)
        if not values:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {', '.join(KEY_COLUMNS)} FROM event_keys WHERE {column} = ANY(%s)",
                (values,),
            )
            return [key_row(tuple(r.values())) for r in c.fetchall()]

    def select_streams(self, ids: Sequence[UUID]) -> list[StoredEvent]:
        if not ids:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, originator_version, topic, state FROM "
                f"{self.events_table_name} WHERE originator_id = ANY(%s) "
                "ORDER BY originator_id, originator_version",
                (list(ids),),
            )
            return [
                StoredEvent(r["originator_id"], r["originator_version"], r["topic"], r["state"])
                for r in c.fetchall()
            ]

    def select_events_by(self, filters: dict[str, str]) -> list[EventRow]:
        where = where_clause(filters, "%s")
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT e.notification_id, e.originator_id, e.originator_version, e.state "
                f"FROM {self.events_table_name} e JOIN event_keys k "
                "ON k.originator_id = e.originator_id "
                f"AND k.originator_version = e.originator_version {where} "
                "ORDER BY e.notification_id",
                list(filters.values()),
            )
            return [
                EventRow(
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    bytes(r["state"]),
                )
                for r in c.fetchall()
            ]

    def count_keys(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) AS n FROM event_keys")
            return c.fetchone()["n"]

    def iter_customer_events(self, upto: int) -> Iterator[tuple[str, int, bytes]]:
        """(customer_id, position, state) of every event up to `upto`, by customer."""
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="revledger_rebuild") as cursor,
        ):
            cursor.itersize = 5000
            cursor.execute(
                f"SELECT k.customer_id, e.notification_id, e.state FROM event_keys k JOIN "
                f"{self.events_table_name} e ON k.originator_id = e.originator_id "
                "AND k.originator_version = e.originator_version "
                'WHERE e.notification_id <= %s ORDER BY k.customer_id COLLATE "C"',
                [upto],
            )
            for row in cursor:
                yield row["customer_id"], row["notification_id"], bytes(row["state"])

    def select_customer_events(self, customers: Sequence[str], upto: int) -> list[tuple]:
        """(customer_id, position, state) of these customers' events up to `upto`."""
        if not customers:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT k.customer_id, e.notification_id, e.state FROM event_keys k JOIN "
                f"{self.events_table_name} e ON k.originator_id = e.originator_id "
                "AND k.originator_version = e.originator_version WHERE k.customer_id = ANY(%s) "
                "AND e.notification_id <= %s ORDER BY k.customer_id, e.notification_id",
                [list(customers), upto],
            )
            return [
                (r["customer_id"], r["notification_id"], bytes(r["state"])) for r in c.fetchall()
            ]
