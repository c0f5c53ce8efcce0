"""The reads `verify` makes of the ledger's tables to hold them to the events' bytes and to
the recording rules after the fact (`ledger.recheck` judges what they return).

They are written for the check alone: none of them is used by ingest or by the
projections, so a fault in those reads cannot hide itself here. Each asks the database a
plain question over whole tables (a join, a group, a window) and returns the first row
that breaks a rule, or every row when the judging is done in Python. The dialect (how a
statement is run or streamed, the events table, its position column) is `LedgerQueries`'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


class AuditQueries:
    """Whole-table reads for `verify`, in the dialect of the recorder they are mixed into."""

    events_table_name: str
    position: str

    def _stream(self, statement: str, params: Sequence[Any]) -> Iterator[tuple]:
        raise NotImplementedError

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        raise NotImplementedError

    def count_keys(self) -> int:
        raise NotImplementedError

    def iter_indexed(self) -> Iterator[tuple]:
        """Every stored event (position, aggregate id, version, topic, state) beside its
        index row (position, event_id, content hash, type, customer, subscription, voids;
        all None where it has none), by position. Two index rows at one position come as
        two rows. A state is bytes, or text where SQLite kept a writer's text."""
        return self._stream(
            f"SELECT e.{self.position}, e.originator_id, e.originator_version, e.topic, "
            "e.state, k.position, k.event_id, k.content_sha256, k.type, k.customer_id, "
            f"k.subscription_id, k.voids FROM {self.events_table_name} e "
            f"LEFT JOIN event_keys k ON k.position = e.{self.position} "
            f"ORDER BY e.{self.position}",
            [],
        )

    def index_without_event(self) -> tuple[int, str] | None:
        """(position, event_id) of the first index row whose position holds no event."""
        rows = self._rows(
            f"SELECT k.position, k.event_id FROM event_keys k LEFT JOIN "
            f"{self.events_table_name} e ON e.{self.position} = k.position "
            f"WHERE e.{self.position} IS NULL ORDER BY k.position LIMIT 1",
            [],
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def repeated_event_id(self) -> tuple[int, str, int] | None:
        """(position, event_id, first position) of the first index row repeating an id."""
        rows = self._rows(
            "SELECT MAX(position), event_id, MIN(position) FROM event_keys "
            "GROUP BY event_id HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1",
            [],
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def voids_and_targets(self) -> list[tuple]:
        """Every void's index row (position, event_id, target, customer, subscription)
        beside its target's (position, type, customer, subscription; None if there is
        no event of that id), by the void's position."""
        return self._rows(
            "SELECT v.position, v.event_id, v.voids, v.customer_id, v.subscription_id, "
            "t.position, t.type, t.customer_id, t.subscription_id FROM event_keys v "
            "LEFT JOIN event_keys t ON t.event_id = v.voids "
            "WHERE v.voids IS NOT NULL ORDER BY v.position",
            [],
        )

    def subscription_changing_hands(self) -> tuple[int, str, str, str, str] | None:
        """(position, event_id, subscription, customer, owner) of the first event filed
        under a subscription for another customer than the one its first event named."""
        rows = self._rows(
            "SELECT position, event_id, subscription_id, customer_id, owner FROM ("
            "SELECT position, event_id, subscription_id, customer_id, FIRST_VALUE("
            "customer_id) OVER (PARTITION BY subscription_id ORDER BY position) AS owner "
            "FROM event_keys WHERE subscription_id IS NOT NULL) s "
            "WHERE customer_id IS NULL OR customer_id <> owner ORDER BY position LIMIT 1",
            [],
        )
        return tuple(rows[0]) if rows else None  # type: ignore[return-value]

    def stream_out_of_step(self) -> tuple[int, int, int | None, str, str] | None:
        """(position, version, the stream's version before it, the subscription or customer
        its index row names, the one its stream's first event named) of the first stored
        event that is not the next version of its stream in recorded order (a stream's
        versions run 1, 2, 3... as positions increase), or that is about another
        subscription or customer than its stream's first event. Names are `s:` + a
        subscription id, else `c:` + a customer id."""
        name = "COALESCE('s:' || k.subscription_id, 'c:' || k.customer_id)"
        rows = self._rows(
            "SELECT at, version, previous, name, first FROM ("
            f"SELECT e.{self.position} AS at, e.originator_version AS version, "
            "LAG(e.originator_version) OVER w AS previous, "
            f"LAG(e.{self.position}) OVER w AS previous_at, {name} AS name, "
            f"FIRST_VALUE({name}) OVER w AS first "
            f"FROM {self.events_table_name} e "
            f"LEFT JOIN event_keys k ON k.position = e.{self.position} "
            "WINDOW w AS (PARTITION BY e.originator_id ORDER BY e.originator_version)) s "
            "WHERE COALESCE(previous, 0) + 1 <> version OR previous_at > at OR name <> first "
            "ORDER BY at LIMIT 1",
            [],
        )
        return tuple(rows[0]) if rows else None  # type: ignore[return-value]

    def indexed_event_id(self, position: int) -> str | None:
        rows = self._rows("SELECT event_id FROM event_keys WHERE position = ?", [position])
        return rows[0][0] if rows else None
