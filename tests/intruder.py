"""An intruder who writes the ledger's tables with plain SQL, computing chain links the way
revledger documents them (docs/audit.md): what a role allowed to INSERT, or the owner,
can do around revledger. The tests hold `verify` to what it then detects."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg

from ledger import merkle
from ledger.chain import canonical_bytes

IDS = uuid5(NAMESPACE_URL, "https://revledger.dev/ids")  # as docs/audit.md states


def stream_id(name: str) -> UUID:
    """The aggregate id of `subscription:<id>` or `customer:<id>`."""
    return uuid5(IDS, name)


def link(previous: str, position: int, aggregate: UUID, version: int, topic: str,
         state: bytes) -> str:
    """chain(n) = SHA-256(chain(n-1) || position || id || version || topic || state)."""
    digest = hashlib.sha256(bytes.fromhex(previous))
    digest.update(struct.pack(">qQ16sqQ", position, 16, aggregate.bytes, version,
                              len(topic.encode())))
    digest.update(topic.encode() + struct.pack(">Q", len(state)) + state)
    return digest.hexdigest()


def _utc(instant: str | None) -> str | None:
    """An RFC 3339 instant as the fixed-width UTC text revledger stores."""
    if instant is None:
        return None
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Intruder:
    """Plain SQL on a ledger: on SQLite its file, on PostgreSQL as the role in `url`."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.url = url
        self.events = "stored_events" if self.sqlite else "revledger_events"
        self.position = "rowid" if self.sqlite else "notification_id"

    def run(self, statement: str, params: list[Any] | None = None) -> list[tuple]:
        if self.sqlite:
            import sqlite3

            with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn, conn:
                return conn.execute(statement, params or []).fetchall()
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params or [])
            return cursor.fetchall() if cursor.description else []

    def stored(self, event_id: str) -> tuple[int, UUID, int, str, dict[str, Any]]:
        """(position, aggregate id, version, topic, state) of a recorded event."""
        position, aggregate, version, topic, state = self.run(
            f"SELECT e.{self.position}, e.originator_id, e.originator_version, e.topic, "
            f"e.state FROM {self.events} e JOIN event_keys k ON k.position = e.{self.position} "
            "WHERE k.event_id = ?", [event_id])[0]
        return (position, aggregate if isinstance(aggregate, UUID) else UUID(aggregate),
                version, topic, json.loads(bytes(state)))

    def head(self) -> tuple[int, str, str]:
        return self.run("SELECT position, recorded_at, chain_sha256 FROM event_chain "
                        "ORDER BY position DESC LIMIT 1")[0]

    def append(self, payload: dict[str, Any], aggregate: UUID, version: int, *,
               customer: str | None, subscription: str | None, opens: str | None = None,
               envelope: Callable[[dict[str, Any]], None] = lambda state: None) -> int:
        """A forged event at the tail, its chain link and index row computed as
        revledger's are: version `version` of stream `aggregate` (`opens`: the stream key
        of a first version). Returns its position."""
        _, recorded, previous = self.head()
        moment = datetime.fromisoformat(recorded.removesuffix("Z")) + timedelta(seconds=1)
        state: dict[str, Any] = {
            "timestamp": {"_type_": "datetime_iso",
                          "_data_": moment.isoformat(timespec="microseconds") + "+00:00"},
            "event_id": payload["event_id"], "type": payload["type"],
            "effective_at": _utc(payload.get("effective_at")), "payload": payload,
        }
        topic = "ledger.aggregates:Recorded"
        if opens is not None:
            topic = "ledger.aggregates:Subscription.Opened"
            state.update(originator_topic="ledger.aggregates:Subscription", key=opens,
                         customer_id=customer)
        envelope(state)
        data = json.dumps(state).encode()
        position = self._insert_event(aggregate, version, topic, data)
        self.run("INSERT INTO event_chain VALUES (?, ?, ?)", [
            position, moment.isoformat(timespec="microseconds") + "Z",
            link(previous, position, aggregate, version, topic, data)])
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        self.run("INSERT INTO event_keys VALUES (?, ?, ?, ?, ?, ?, ?)", [
            position, payload["event_id"], digest, payload["type"], customer, subscription,
            payload.get("voids")])
        self._grow_tree(position, aggregate, version, topic, data)
        return position

    def _grow_tree(self, position: int, aggregate: UUID, version: int, topic: str,
                   data: bytes) -> None:
        """The Merkle tree's rows for one more leaf, as the ledger writes them (docs/audit.md):
        what a role that may INSERT into `merkle_tree` can add."""
        last = self.run("SELECT idx FROM merkle_tree WHERE level = 0 ORDER BY idx DESC LIMIT 1")
        size = last[0][0] + 1 if last else 0
        frontier = [bytes.fromhex(self.run("SELECT sha256 FROM merkle_tree WHERE level = ? "
                                           "AND idx = ?", [level, idx])[0][0])
                    for level, idx in merkle.frontier(size)]
        leaf = merkle.leaf_hash(canonical_bytes(position, aggregate.bytes, version, topic, data))
        for level, idx, digest in merkle.append(size, frontier, [leaf]):
            self.run("INSERT INTO merkle_tree VALUES (?, ?, ?, ?)",
                     [level, idx, position if level == 0 else None, digest.hex()])

    def retree(self) -> None:
        """The whole Merkle tree again, from the events as they now are (guards dropped)."""
        self.run("DELETE FROM merkle_tree")
        for position, aggregate, version, topic, state in self.run(
                f"SELECT e.{self.position}, e.originator_id, e.originator_version, e.topic, "
                f"e.state FROM {self.events} e JOIN event_chain c "
                f"ON c.position = e.{self.position} ORDER BY e.{self.position}"):
            aggregate = aggregate if isinstance(aggregate, UUID) else UUID(aggregate)
            self._grow_tree(position, aggregate, version, topic, bytes(state))

    def _insert_event(self, aggregate: UUID, version: int, topic: str, state: bytes) -> int:
        if self.sqlite:
            self.run(f"INSERT INTO {self.events} (originator_id, originator_version, topic, "
                     "state) VALUES (?, ?, ?, ?)", [aggregate.hex, version, topic, state])
            return self.run(f"SELECT MAX(rowid) FROM {self.events}")[0][0]
        return self.run(f"INSERT INTO {self.events} (originator_id, originator_version, topic, "
                        "state) VALUES (?, ?, ?, ?) RETURNING notification_id",
                        [aggregate, version, topic, state])[0][0]

    def unguard(self) -> None:
        """What the owner does first: drop the guards against UPDATE and DELETE."""
        if self.sqlite:
            for table in (self.events, "event_keys", "event_chain", "merkle_tree"):
                for op in ("update", "delete"):
                    self.run(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        else:
            for table in (self.events, "event_keys", "event_chain", "merkle_tree"):
                self.run(f"ALTER TABLE {table} DISABLE TRIGGER USER")

    def rewrite(self, event_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """The owner rewrites an event's payload, then its index row's content hash and
        every chain link from there on (guards dropped)."""
        position, *_, state = self.stored(event_id)
        change(state["payload"])
        digest = hashlib.sha256(json.dumps(state["payload"], sort_keys=True,
                                           separators=(",", ":"), ensure_ascii=False)
                                .encode()).hexdigest()
        self.run(f"UPDATE {self.events} SET state = ? WHERE {self.position} = ?",
                 [json.dumps(state).encode(), position])
        self.run("UPDATE event_keys SET content_sha256 = ? WHERE position = ?",
                 [digest, position])
        self.rechain()

    def rechain(self) -> None:
        previous = "0" * 64
        for position, aggregate, version, topic, state in self.run(
                f"SELECT {self.position}, originator_id, originator_version, topic, state "
                f"FROM {self.events} ORDER BY {self.position}"):
            aggregate = aggregate if isinstance(aggregate, UUID) else UUID(aggregate)
            previous = link(previous, position, aggregate, version, topic, bytes(state))
            self.run("UPDATE event_chain SET chain_sha256 = ? WHERE position = ?",
                     [previous, position])
        self.retree()

    def cut_tail(self) -> None:
        """The owner deletes the last event, its index row and its link (guards dropped)."""
        position = self.head()[0]
        for table, column in ((self.events, self.position), ("event_keys", "position"),
                              ("event_chain", "position")):
            self.run(f"DELETE FROM {table} WHERE {column} = ?", [position])
        self.retree()
