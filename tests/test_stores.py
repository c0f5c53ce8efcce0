"""The stores' seam: which store a URL names is said once (`ledger.settings.STORES`), each
side picks its database's module by that kind, and what lives beside the ledger's tables
(`ledger.held`) is written and created through the recorder alone, alike on both stores."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.application import LedgerApplication
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.instants import format_instant
from ledger.recheck import recheck
from ledger.recorder import rows_of
from ledger.settings import STORES, UnsupportedDatabase, env_for_url, store_kind
from projections.projection import VIEWS, store_view
from services.ledger import open_ledger
from tests.feeds import jsonl, voided
from tests.test_ingest import FEED, recorded, snapshot

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("url", "kind"), [
    ("sqlite:///revledger.db", "sqlite"),
    ("sqlite:////tmp/abs.db", "sqlite"),
    ("postgresql://user:pw@db.example:5433/ledger", "postgresql"),
    ("postgres://db.example/ledger", "postgresql"),
])
def test_a_url_names_its_store_and_the_settings_name_that_store_s_module(url, kind):
    module = {"sqlite": "ledger.sqlite", "postgresql": "ledger.postgres"}[kind]
    assert store_kind(url) == kind
    env = env_for_url(url)
    for topic in ("PERSISTENCE_MODULE", "APPLICATION_RECORDER_TOPIC", "COORDINATION_TOPIC"):
        assert env[topic].split(":")[0] == module


@pytest.mark.parametrize("url", ["mysql://db/ledger", "revledger.db", "http://[::1/x"])
def test_a_url_naming_no_store_is_refused(url):
    with pytest.raises(UnsupportedDatabase):
        store_kind(url)


def test_every_kind_of_store_has_its_view():
    """A new store is a row of `STORES` and a line of `VIEWS`, under the same kind."""
    assert {store.kind for store in STORES.values()} == set(VIEWS)


def test_the_ledger_knows_its_store_by_its_kind(db_url):
    with LedgerApplication(db_url) as app:
        assert app.kind == store_kind(db_url)
        assert type(store_view(app)).__module__ == VIEWS[app.kind].split(":")[0]


DRIVERS = ("sqlite3", "psycopg", "psycopg_pool", "eventsourcing.sqlite",
           "eventsourcing.postgres", "ledger.sqlite", "ledger.postgres", "ledger.liveness",
           "projections.sqlite", "projections.postgres")
DATABASE_MODULES = {"ledger/sqlite.py", "ledger/postgres.py", "ledger/liveness.py",
                    "projections/sqlite.py", "projections/postgres.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {n for n in names if any(n == d or n.startswith(d + ".") for d in DRIVERS)}


def test_only_the_database_modules_import_a_database():
    """Everything else reaches a database through the recorder, the coordination or the
    view; `services/ledger.py` names sqlite3's errors, which eventsourcing lets through."""
    found = {}
    for folder in ("ledger", "projections", "services", "api", "commands"):
        for path in (ROOT / folder).rglob("*.py"):
            name = path.relative_to(ROOT).as_posix()
            if name not in DATABASE_MODULES and (drivers := _imports(path)):
                found[name] = drivers
    assert found == {"services/ledger.py": {"sqlite3"}}


def test_tables_beside_the_ledger_s_are_created_once_through_the_recorder(db_url):
    ddl = ["CREATE TABLE IF NOT EXISTS beside_a (id {serial}, note TEXT NOT NULL)",
           "CREATE TABLE IF NOT EXISTS beside_b (name TEXT PRIMARY KEY)"]
    with LedgerApplication(db_url) as app:
        recorder = app.ledger_recorder
        assert not recorder.tables_exist(["beside_a", "beside_b"])
        recorder.create_tables(["beside_a", "beside_b"], ddl)
        assert recorder.tables_exist(["beside_a", "beside_b"])
        assert not recorder.tables_exist(["beside_a", "nowhere"])
        recorder.create_tables(["beside_a", "beside_b"], ["not even SQL: never run"])
        recorder.write([("INSERT INTO beside_a (note) VALUES (?)", ("first",)),
                        ("INSERT INTO beside_a (note) VALUES (?)", ("second",))])
        # the serial key numbers rows as they are inserted
        assert recorder.rows("SELECT id, note FROM beside_a ORDER BY id") == [
            (1, "first"), (2, "second")]


def test_statements_written_together_commit_together_or_not_at_all(db_url):
    with LedgerApplication(db_url) as app:
        recorder = app.ledger_recorder
        recorder.create_tables(["beside_b"], ["CREATE TABLE beside_b (name TEXT PRIMARY KEY)"])
        recorder.write([("INSERT INTO beside_b VALUES (?)", ("kept",))])
        with pytest.raises(IntegrityError):
            recorder.write([("INSERT INTO beside_b VALUES (?)", ("lost",)),
                            ("INSERT INTO beside_b VALUES (?)", ("kept",))])
        assert recorder.rows("SELECT name FROM beside_b WHERE name IN (?, ?)",
                             ["kept", "lost"]) == [("kept",)]


class WritingRows(Ingestor):
    """Writes each batch as a writer process does: as plain rows (`insert_rows`)."""

    def write(self, batch) -> None:
        self.recorder.insert_rows(rows_of(batch.stored), keys=batch.keys,
                                  recorded_at=format_instant(batch.timestamp))


def test_a_batch_written_as_rows_is_stored_as_one_written_as_events(db_url, tmp_path):
    """Either recorder takes a batch as rows (SQLite's writer process sends them so)."""
    feed = [*FEED, voided("e5", "e1")]
    with open_ledger(db_url) as app:
        WritingRows(app, batch_size=2, parallel=False).ingest(
            numbered_lines(jsonl(*feed).splitlines()))
        assert recheck(app.ledger_recorder.audit_queries()).problem is None
    _, _, as_events = recorded(f"sqlite:///{tmp_path / 'events.db'}", feed, 2)
    assert snapshot(db_url) == as_events
