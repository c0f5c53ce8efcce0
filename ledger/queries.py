"""The ledger's reads beyond eventsourcing's, written once for both stores.

Each database's recorder (`ledger.sqlite`, `ledger.postgres`) mixes `LedgerQueries` into
eventsourcing's application recorder and supplies its dialect: how a statement is run,
streamed and written, how a set of values is tested, which tables exist, how a column
numbering rows is declared. What the rest of the code may ask of either, and the rows they
return, is `ledger.recorder`'s; a neighbour of the ledger's tables (`ledger.held`) writes
its statements once, with `?` placeholders, and runs them through `rows` and `write`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger.audit_queries import AuditQueries
from ledger.chain import Link, chained, recorded_at
from ledger.recorder import KEY_COLUMNS, EventRow, KeyRow, Row
from ledger.tables import event_keys_table


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


class LedgerQueries(AuditQueries):
    """The ledger's reads beyond eventsourcing's, written once for both stores: SQL uses
    `?` placeholders and `{position}` for the notification id; a dialect supplies the rest.
    `verify`'s own reads (`AuditQueries`) are in the same dialect."""

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

    # --- the dialect of a write -------------------------------------------------------
    serial = "INTEGER PRIMARY KEY"  # a key numbering rows as they are inserted

    def _sql(self, statement: str) -> str:
        """A statement written with `?` placeholders, in this database's."""
        return statement

    def _cursor(self, transaction: Any) -> Any:
        """The cursor of one of the datastore's transactions, taking `_sql`'s statements."""
        return transaction

    def tables_exist(self, names: Sequence[str]) -> bool:
        raise NotImplementedError

    # --- a neighbour's tables (`ledger.held`), in this database -------------------------
    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """The rows of one read (`?` placeholders), as plain tuples."""
        return self._rows(statement, params)

    def write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """(statement, parameters) pairs (`?` placeholders) run in one transaction: all of
        them commit, or none."""
        with self.datastore.transaction(commit=True) as transaction:
            cursor = self._cursor(transaction)
            for statement, params in statements:
                cursor.execute(self._sql(statement), params)

    def create_tables(self, names: Sequence[str], ddl: Sequence[str]) -> None:
        """Run `ddl` (`{serial}`: this database's `serial` column) in one transaction,
        unless the tables `names` all exist: then no DDL runs, so a role without CREATE
        opens them."""
        if not self.tables_exist(names):
            self.write((statement.replace("{serial}", self.serial), ()) for statement in ddl)

    def insert_rows(
        self, rows: Sequence[Row], *, keys: Sequence[tuple] | None = None,
        recorded_at: str | None = None,
    ) -> None:
        """`insert_events` for events already encoded as rows (what a writer process
        receives; SQLite's recorder inserts them as they are)."""
        self.insert_events(  # type: ignore[attr-defined]
            [StoredEvent(UUID(bytes=r[0]), r[1], r[2], r[3]) for r in rows],
            keys=keys, recorded_at=recorded_at)

    def audit_queries(self) -> AuditQueries:
        """`verify`'s own reads of the tables (`ledger.audit_queries`), in this dialect."""
        return self

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
            c.execute(self._ddl(event_keys_table("event_keys_v2")))
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

    def select_keys_prefixed(self, prefix: str) -> list[KeyRow]:
        """Index rows whose event id starts with `prefix`, and the voids of those events
        (whatever their own ids): what an import under one namespace has recorded."""
        assert prefix
        test = f"substr({{}}, 1, {len(prefix)}) = ?"
        statement = (f"SELECT {', '.join(KEY_COLUMNS)} FROM event_keys "
                     f"WHERE {test.format('event_id')} OR {test.format('voids')}")
        return [KeyRow(*row) for row in self._rows(statement, [prefix, prefix])]

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
        return list(self.iter_events_by(filters, upto))

    def iter_events_by(
        self, filters: dict[str, str], upto: int | None = None
    ) -> Iterator[EventRow]:
        """`select_events_by`, a page at a time: listing a whole ledger (`revledger
        events`) holds one page of rows, not all of them."""
        assert set(filters) <= set(KEY_COLUMNS)
        tests = [f"k.{column} = ?" for column in filters]
        params: list[Any] = list(filters.values())
        if upto is not None:
            tests.append(f"e.{self.position} <= ?")
            params.append(upto)
        for row in self._stream(
            f"SELECT e.{self.position}, e.originator_id, e.originator_version, e.state, "
            f"c.chain_sha256 FROM {self._join()} "
            f"LEFT JOIN event_chain c ON c.position = e.{self.position} "
            f"{'WHERE ' + ' AND '.join(tests) if tests else ''} "
            f"ORDER BY e.{self.position}",
            params,
        ):
            yield EventRow(row[0], _uuid(row[1]), row[2], bytes(row[3]), row[4])

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
        canonical: Sequence[bytes],
    ) -> list[tuple]:
        """The chain rows of a transaction's events (`canonical`: their canonical bytes,
        `ledger.chain.canonical_rows`); refused (and the transaction rolled back, to be
        decided again) if they were stamped before the head."""
        if recorded:  # one instant for the whole transaction: ingest's batch
            instants: Iterable[str] = repeat(recorded, len(rows))
        else:
            instants = (recorded_at(row[3]) for row in rows)
        try:
            return list(chained(head, zip(positions, canonical, instants, strict=True)))
        except ValueError as exc:
            raise IntegrityError(str(exc)) from None

    def first_event_recorded_at(self) -> str | None:
        """When the ledger recorded its first canonical event (None: it holds none)."""
        rows = self._rows("SELECT recorded_at FROM event_chain WHERE position = "
                          "(SELECT MIN(position) FROM event_keys)", [])
        return rows[0][0] if rows else None

    def count_keys(self) -> int:
        return self._rows("SELECT COUNT(*) FROM event_keys", [])[0][0]

    def iter_customer_events(
        self, upto: int, first: str | None = None, after: str | None = None
    ) -> Iterator[tuple[str, int, bytes]]:
        """(customer_id, position, state) of every event up to `upto`, by customer; only
        of customers from `first` on and before `after`, if given (byte order). Exchange
        rates (about no customer) are not among them: `iter_rate_events`."""
        tests, params = [f"e.{self.position} <= ?", "k.customer_id IS NOT NULL"], [upto]
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

    def iter_rate_events(self, upto: int) -> Iterator[tuple[int, bytes]]:
        """(position, state) of every exchange rate up to `upto` and of every void of one
        (the events indexed under no customer), in recorded order."""
        for position, state in self._stream(
            f"SELECT e.{self.position}, e.state FROM {self._join()} "
            f"WHERE e.{self.position} <= ? AND k.customer_id IS NULL "
            f"ORDER BY e.{self.position}",
            [upto],
        ):
            yield position, bytes(state)

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

