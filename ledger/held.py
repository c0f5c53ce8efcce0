"""What a billing source delivered beside its events: the objects the ledger learned from it
(Stripe's discounts and coupons, which later events name by id only), the records it could
not map yet (the quarantine), and the source's settings (what its figures mean).

These tables sit beside the ledger's, in the same database, and are only ever inserted
into, like the ledger's own: a held record is never edited; retrying it adds a row saying
what became of it (`quarantine_done`), and `quarantine list` shows those without one.
Statements are written once, with `?` placeholders and `{serial}` for a key numbering
rows as they are inserted; the ledger's recorder runs them in its database's dialect
(`LedgerRecorder.rows`, `write`, `create_tables`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.instants import format_instant

_DDL = [
    "CREATE TABLE IF NOT EXISTS source_objects (source TEXT NOT NULL, object_id TEXT NOT NULL, "
    "body TEXT NOT NULL, learned_at TEXT NOT NULL, PRIMARY KEY (source, object_id))",
    "CREATE TABLE IF NOT EXISTS quarantine (id {serial}, source TEXT NOT NULL, "
    "record_key TEXT NOT NULL, event_id TEXT NOT NULL, reason TEXT NOT NULL, "
    "raw TEXT NOT NULL, evidence TEXT, held_at TEXT NOT NULL, UNIQUE (source, record_key))",
    "CREATE TABLE IF NOT EXISTS quarantine_done (id BIGINT PRIMARY KEY, done_at TEXT NOT NULL, "
    "outcome TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS source_settings (source TEXT NOT NULL, name TEXT NOT NULL, "
    "value TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (source, name))",
]
SOURCE_TABLES = ("source_objects", "quarantine", "quarantine_done", "source_settings")
_READY: set[str] = set()  # ledgers whose tables this process has seen or created


def create_source_tables(app: Any, *, locked: bool = False) -> None:
    """The source tables, where missing, under the schema lock (`locked`: held already):
    with the ledger's, by the role that creates the ledger. Where they all exist, no DDL
    runs at all, so roles without CREATE can open the ledger."""
    if app.url in _READY:
        return
    if not locked:
        with app.schema_lock():
            create_source_tables(app, locked=True)
        return
    app.ledger_recorder.create_tables(SOURCE_TABLES, _DDL)
    _READY.add(app.url)


@dataclass(frozen=True)
class HeldRecord:
    """A quarantined record, as kept: verbatim, with its reason."""

    id: int
    source: str
    event_id: str
    reason: str
    raw: bytes
    evidence: dict[str, Any] | None
    held_at: str


def _now() -> str:
    return format_instant(datetime.now(UTC))


def recorded_settings(app: Any) -> dict[str, dict[str, str]]:
    """Every source's recorded settings, read without creating a table (a reader's role
    may not create one): none where no source ever recorded any."""
    try:
        rows = app.ledger_recorder.rows("SELECT source, name, value FROM source_settings "
                                        "ORDER BY source, name")
    except Exception:  # no such table (any store's error for it): nothing recorded
        return {}
    settings: dict[str, dict[str, str]] = {}
    for source, name, value in rows:
        settings.setdefault(source, {})[name] = value
    return settings


class SourceStore:
    """The source tables of one open ledger (`ledger.application.LedgerApplication`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.recorder = app.ledger_recorder
        create_source_tables(app)

    # -- learned objects -------------------------------------------------------------------
    def learn(self, source: str, objects: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Keep objects not known yet (the first copy of an id is kept: the terms of a
        discount or coupon never change); how many of them were new."""
        fresh = {oid: body for oid, body in objects}
        if not fresh:
            return 0
        known = set(self.objects(source, list(fresh)))
        new = [(oid, body) for oid, body in fresh.items() if oid not in known]
        now = _now()
        self.recorder.write(
            ("INSERT INTO source_objects VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
             (source, oid, orjson.dumps(body).decode(), now)) for oid, body in new)
        return len(new)

    def objects(self, source: str, ids: Sequence[str] | None = None) -> dict[str, dict]:
        """Learned objects by id: these (or all of the source's)."""
        if ids is not None and not ids:
            return {}
        statement = "SELECT object_id, body FROM source_objects WHERE source = ?"
        params: list[Any] = [source]
        if ids is not None:
            statement += f" AND object_id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        return {oid: orjson.loads(body) for oid, body in self.recorder.rows(statement, params)}

    # -- the quarantine --------------------------------------------------------------------
    def hold(self, source: str, held: Iterable[tuple[str, str, bytes, dict | None]]) -> int:
        """Keep (event id, reason, raw record, delivery evidence) verbatim; a record held
        already (same event id, or same bytes where it has none: "-", as every source
        says of an id it cannot read) is not kept twice."""
        now = _now()
        rows = []
        for event_id, reason, raw, evidence in held:
            key = event_id if event_id != "-" else "sha256:" + hashlib.sha256(raw).hexdigest()
            rows.append(("INSERT INTO quarantine (source, record_key, event_id, reason, raw, "
                         "evidence, held_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                         "ON CONFLICT DO NOTHING",
                         (source, key, event_id, reason, raw.decode("utf-8", "replace"),
                          None if evidence is None else orjson.dumps(evidence).decode(), now)))
        if rows:
            self.recorder.write(rows)
        return len(rows)

    def held(self, source: str | None = None) -> list[HeldRecord]:
        """Records still held (no outcome recorded for them), oldest first."""
        statement = ("SELECT q.id, q.source, q.event_id, q.reason, q.raw, q.evidence, "
                     "q.held_at FROM quarantine q LEFT JOIN quarantine_done d ON d.id = q.id "
                     "WHERE d.id IS NULL")
        params: list[Any] = []
        if source is not None:
            statement += " AND q.source = ?"
            params.append(source)
        return [HeldRecord(row[0], row[1], row[2], row[3], row[4].encode(),
                           None if row[5] is None else orjson.loads(row[5]), row[6])
                for row in self.recorder.rows(statement + " ORDER BY q.id", params)]

    def done(self, outcomes: Iterable[tuple[int, str]]) -> None:
        """Record what became of held records (e.g. `accepted`, `duplicate`)."""
        now = _now()
        self.recorder.write(
            ("INSERT INTO quarantine_done VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
             (qid, now, outcome)) for qid, outcome in outcomes)

    # -- settings --------------------------------------------------------------------------
    def settings(self, source: str) -> dict[str, str]:
        return dict(self.recorder.rows(
            "SELECT name, value FROM source_settings WHERE source = ?", [source]))

    def settle(self, source: str, values: dict[str, str]) -> dict[str, str]:
        """Record settings not recorded yet; a setting once recorded stays (the figures
        already recorded were computed under it), so a different value is refused."""
        current = self.settings(source)
        clash = {k: v for k, v in values.items() if k in current and current[k] != v}
        if clash:
            name = next(iter(clash))
            raise ValueError(f"{source} setting {name} is already {current[name]!r} in this "
                             "ledger: the figures recorded were computed under it")
        now = _now()
        self.recorder.write(
            ("INSERT INTO source_settings VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
             (source, k, v, now)) for k, v in values.items() if k not in current)
        return {**current, **values}
