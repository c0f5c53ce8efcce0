"""The auditor's guarantees, on both stores: the chain detects tampering, the event tables
refuse changes, the projection is held to a fresh fold."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from services.ingest import ingest_feed
from tests.feeds import cancelled, changed, jsonl, started, voided

FEED = [
    started("e1", "s1", "c1", "2024-01-01T00:00:00Z"),
    started("e2", "s2", "c2", "2024-01-05T00:00:00Z", amount="50.00"),
    changed("e3", "s1", "c1", "2024-02-01T00:00:00Z", quantity=2),
    cancelled("e4", "s2", "c2", "2024-03-01T00:00:00Z"),
    voided("e5", "e3"),
]


def json_of(db_url: str, *args: str):
    result = CliRunner().invoke(main, ["--db", db_url, *args, "--format", "json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def verify(db_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", db_url, "verify"])
    return result.exit_code, (result.stdout + result.stderr).strip()


@pytest.fixture
def ledger(db_url) -> str:
    ingest_feed(db_url, jsonl(*FEED[:3]).splitlines())  # two transactions: the chain
    ingest_feed(db_url, jsonl(*FEED[3:]).splitlines())  # runs across them
    return db_url


def positions(raw_sql) -> list[int]:
    """Positions of the canonical events e1..e5 (the ledger's settings event comes first)."""
    return [row[0] for row in raw_sql("SELECT position FROM event_chain ORDER BY position")][1:]


def unguard(db_url: str, raw_sql) -> None:
    """What an intruder with the owner's rights does first: drop the guards."""
    if db_url.startswith("sqlite"):
        for op in ("update", "delete"):
            raw_sql(f"DROP TRIGGER stored_events_no_{op}")
    else:
        raw_sql("ALTER TABLE {events} DISABLE TRIGGER USER")


def test_an_untouched_ledger_verifies(ledger):
    code, output = verify(ledger)
    assert code == 0, output
    assert output.startswith("verified: 6 events chained (head ")
    assert output.endswith("projection of 2 customers equals a fresh fold")


@pytest.mark.parametrize("statement", [
    "UPDATE {events} SET state = state WHERE originator_version = 1",
    "DELETE FROM {events} WHERE originator_version = 2",
    "UPDATE event_keys SET content_sha256 = 'x'",
    "DELETE FROM event_chain",
])
def test_the_event_tables_refuse_updates_and_deletes(ledger, raw_sql, statement):
    with pytest.raises(Exception, match="never updated or deleted"):
        raw_sql(statement)


def test_truncate_is_refused_on_postgresql(pg_url):
    import psycopg

    ingest_feed(pg_url, jsonl(*FEED).splitlines())
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.Error, match="never updated"):
        conn.execute("TRUNCATE revledger_events")


def test_an_altered_payload_is_detected_at_its_position(ledger, raw_sql):
    unguard(ledger, raw_sql)
    e2 = positions(raw_sql)[1]
    position = "rowid" if ledger.startswith("sqlite") else "notification_id"
    raw_sql(f"UPDATE {{events}} SET state = REPLACE(state, '50.00', '500.00') "
            f"WHERE {position} = {e2}" if ledger.startswith("sqlite") else
            f"UPDATE {{events}} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            f"'50.00', '500.00'), 'UTF8') WHERE {position} = {e2}")
    code, output = verify(ledger)
    assert code == 1
    assert f"at position {e2} (event e2): chain hash differs" in output


def test_a_deleted_row_is_detected(ledger, raw_sql):
    unguard(ledger, raw_sql)
    e3 = positions(raw_sql)[2]
    position = "rowid" if ledger.startswith("sqlite") else "notification_id"
    raw_sql(f"DELETE FROM {{events}} WHERE {position} = {e3}")
    code, output = verify(ledger)
    assert code == 1
    assert f"at position {e3} (event -): the event of this chain link is missing" in output


def test_two_swapped_rows_are_detected_at_the_first(ledger, raw_sql):
    unguard(ledger, raw_sql)
    e1, e2 = positions(raw_sql)[:2]
    position = "rowid" if ledger.startswith("sqlite") else "notification_id"
    raw_sql(f"UPDATE {{events}} SET {position} = -{position} WHERE {position} IN ({e1}, {e2})")
    raw_sql(f"UPDATE {{events}} SET {position} = {e2} WHERE {position} = -{e1}")
    raw_sql(f"UPDATE {{events}} SET {position} = {e1} WHERE {position} = -{e2}")
    code, output = verify(ledger)
    assert code == 1
    assert f"at position {e1} (event e2): chain hash differs" in output


def test_a_tampered_projection_is_named_by_customer(ledger, raw_sql):
    assert verify(ledger)[0] == 0  # the projection is current
    raw_sql("UPDATE mrr_steps SET mrr = '1' WHERE customer_id = 'c2'")
    code, output = verify(ledger)
    assert code == 1
    assert "the projection of customer c2 differs from a fresh fold" in output


def test_events_known_at_lists_only_what_was_recorded_by_then(ledger):
    events = json_of(ledger, "events")
    first_transaction = events[2]["recorded_at"]  # e1..e3 were ingested together
    assert [e["event_id"] for e in json_of(ledger, "events", "--known-at", first_transaction)] \
        == ["e1", "e2", "e3"]
    assert json_of(ledger, "events", "--known-at", "2000-01-01") == []
    assert all(len(e["chain_sha256"]) == 64 for e in events)
