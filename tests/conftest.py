"""Fixtures: every store test runs on SQLite (a temp file) and on a real PostgreSQL.

PostgreSQL comes from REVLEDGER_TEST_POSTGRES (scripts/test.sh starts a throwaway server
and sets it); each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.strategies import register_profiles

register_profiles()

PG_URL = os.environ.get("REVLEDGER_TEST_POSTGRES")


def _admin(url: str) -> psycopg.Connection:
    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username,
        password=parts.password or "", dbname=parts.path.strip("/") or "postgres",
        autocommit=True,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    if not PG_URL:
        pytest.fail("REVLEDGER_TEST_POSTGRES is not set: run the suite with scripts/test.sh")
    name = "t_" + uuid.uuid4().hex[:16]
    with _admin(PG_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(PG_URL)
    yield urlunsplit(parts._replace(path="/" + name))
    with _admin(PG_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """The same test, once per store."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def raw_sql(db_url) -> Iterator:
    """Run SQL on the ledger's database behind its back, as an intruder with the owner's
    rights would (`{events}` names the events table)."""

    def run(statement: str) -> list[tuple]:
        if db_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
                return conn.execute(statement.format(events="stored_events")).fetchall()
        with _admin(db_url) as conn:
            cursor = conn.execute(statement.format(events="revledger_events"))
            return cursor.fetchall() if cursor.description else []

    yield run


@pytest.fixture
def fresh_db(request, tmp_path):
    """A factory of empty ledgers on the store under test (one per hypothesis example):
    parametrize it indirectly with "sqlite" or "postgresql"."""
    store = request.param

    def make() -> str:
        if store == "sqlite":
            return f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
        if not PG_URL:
            pytest.fail("REVLEDGER_TEST_POSTGRES is not set: run the suite with scripts/test.sh")
        name = "h_" + uuid.uuid4().hex[:16]
        with _admin(PG_URL) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: _drop(name))
        return PG_URL.rsplit("/", 1)[0] + "/" + name

    return make


def _drop(name: str) -> None:
    with _admin(PG_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
