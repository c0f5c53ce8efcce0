"""The auditor's guarantees, on both stores: the chain detects tampering, the event tables
refuse changes, the projection is held to the reference fold."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ledger.application import LedgerApplication
from projections.engine import MRRIndex
from projections.explain import explain_nrr
from projections.projection import MRRProjection
from services.audit import customer_events
from services.ingest import ingest_feed
from services.ledger import open_ledger
from services.metrics import engine_for, head_position
from tests.feeds import cancelled, changed, jsonl, started, voided

ROOT = Path(__file__).resolve().parent.parent

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
    assert "; the projection of 2 customers (6 rows, 4 versions) and the query columns " \
        "equals the reference fold, in " in output


@pytest.mark.parametrize("statement", [
    "UPDATE {events} SET state = state WHERE originator_version = 1",
    "DELETE FROM {events} WHERE originator_version = 2",
    "UPDATE event_keys SET content_sha256 = 'x'",
    "DELETE FROM event_chain",
])
def test_the_event_tables_refuse_updates_and_deletes(ledger, raw_sql, statement):
    with pytest.raises(Exception, match="never updated or deleted"):
        raw_sql(statement)


# The index as revledger laid it out before it referred to events by position.
OLD_INDEX = [
    "CREATE TABLE old_keys (event_id TEXT PRIMARY KEY, content_sha256 TEXT NOT NULL, "
    "originator_id {uuid} NOT NULL, originator_version INTEGER NOT NULL, type TEXT NOT NULL, "
    "customer_id TEXT, subscription_id TEXT, voids TEXT)",
    "INSERT INTO old_keys SELECT k.event_id, k.content_sha256, e.originator_id, "
    "e.originator_version, k.type, k.customer_id, k.subscription_id, k.voids "
    "FROM event_keys k JOIN {events} e ON e.{position} = k.position",
    "DROP TABLE event_keys",
    "ALTER TABLE old_keys RENAME TO event_keys",
    "CREATE INDEX event_keys_customer "
    "ON event_keys (customer_id, originator_id, originator_version)",
    "CREATE UNIQUE INDEX event_keys_voids ON event_keys (voids) WHERE voids IS NOT NULL",
]


def test_an_index_laid_out_by_an_earlier_revledger_is_laid_out_again_when_opened(
    ledger, raw_sql
):
    sqlite = ledger.startswith("sqlite")
    before = json_of(ledger, "events"), json_of(ledger, "history", "--customer", "c1")
    for statement in OLD_INDEX:
        raw_sql(statement.replace("{uuid}", "TEXT" if sqlite else "uuid")
                .replace("{position}", "rowid" if sqlite else "notification_id"))

    assert (json_of(ledger, "events"), json_of(ledger, "history", "--customer", "c1")) == before
    assert raw_sql("SELECT position, event_id FROM event_keys ORDER BY position") == [
        (position, f"e{n}") for n, position in enumerate(positions(raw_sql), start=1)
    ]
    with pytest.raises(Exception, match="never updated or deleted"):
        raw_sql("UPDATE event_keys SET content_sha256 = 'x'")
    again = ingest_feed(ledger, jsonl(*FEED, voided("e6", "e3")).splitlines())
    assert (again.summary.duplicates, again.summary.rejected) == (5, 1)  # e3's second void
    assert verify(ledger)[0] == 0


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
    assert "the projection of customer c2 differs from the reference fold of its events at " \
        "position" in output
    assert "(MRR steps): run `revledger replay`" in output


@pytest.mark.parametrize("known_at", [False, True], ids=["current", "known-at"])
@pytest.mark.parametrize(("mrr", "reason"), [
    ("abc", "invalid literal for int() with base 10: 'abc'"),
    ("1/0", "integer division or modulo by zero"),
], ids=["not a number", "zero denominator"])
def test_unreadable_projection_rows_end_a_query_in_one_line_that_says_what_to_do(
        ledger, raw_sql, known_at, mrr, reason):
    """Rows edited behind the ledger's back that the query columns cannot be built from
    (the stored columns being gone): no traceback, and `replay` repairs them."""
    raw_sql(f"UPDATE mrr_steps SET mrr = '{mrr}' WHERE customer_id = 'c2'")
    raw_sql("DELETE FROM engine_snapshot")
    args = ["--db", ledger, "mrr", "--at", "2024-12-31"]
    if known_at:
        args += ["--known-at", json_of(ledger, "events")[-1]["recorded_at"]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output == (f"revledger: the projection's rows cannot be read ({reason}): "
                             "run `revledger verify`, then `revledger replay`\n")
    assert CliRunner().invoke(main, ["--db", ledger, "replay"]).exit_code == 0
    assert CliRunner().invoke(main, args).exit_code == 0


def test_query_columns_other_than_the_projections_are_caught(ledger):
    """Queries answer from the stored columns: they are held to the projection's rows."""
    with LedgerApplication(ledger) as app:
        view = MRRProjection(app).view
        position = view.max_tracking_id(app.name)
        assert view.load_snapshot(position) is not None  # stored by the ingest
        view.save_snapshot(position, MRRIndex.from_rows([], [], []).to_bytes())
    code, output = verify(ledger)
    assert code == 1
    assert output == ("revledger: verify FAILED: the projection of customer c1 differs from "
                      "the reference fold of its events (query columns: first paid instant): "
                      "run `revledger replay`")
    assert CliRunner().invoke(main, ["--db", ledger, "replay"]).exit_code == 0
    assert verify(ledger)[0] == 0


def test_events_known_at_lists_only_what_was_recorded_by_then(ledger):
    events = json_of(ledger, "events")
    first_transaction = events[2]["recorded_at"]  # e1..e3 were ingested together
    assert [e["event_id"] for e in json_of(ledger, "events", "--known-at", first_transaction)] \
        == ["e1", "e2", "e3"]
    assert json_of(ledger, "events", "--known-at", "2000-01-01") == []
    assert all(len(e["chain_sha256"]) == 64 for e in events)


# -- history and explain -------------------------------------------------------------------

def test_history_lists_a_customers_events_in_effective_order_with_voids_marked(ledger):
    events = json_of(ledger, "history", "--customer", "c1")["events"]
    assert [(e["event_id"], e["voided_by"], e["mrr_after"]) for e in events] == [
        ("e1", None, "100.00"),
        ("e3", "e5", None),  # the quantity change to 2, voided: MRR never moved
        ("e5", None, None),  # the void itself, at its recording instant
    ]
    assert events[1]["voided_at"] == events[2]["recorded_at"]
    assert events[2]["voids"] == "e3"


def test_history_known_at_shows_the_customer_before_the_void(ledger):
    e3_recorded = json_of(ledger, "events")[2]["recorded_at"]
    events = json_of(ledger, "history", "--customer", "c1", "--known-at", e3_recorded)["events"]
    assert [(e["event_id"], e["voided_by"], e["mrr_after"]) for e in events] == [
        ("e1", None, "100.00"), ("e3", None, "200.00")]


def test_history_of_an_unknown_customer_is_one_line_and_exit_one(ledger):
    result = CliRunner().invoke(main, ["--db", ledger, "history", "--customer", "nobody"])
    assert result.exit_code == 1
    assert result.stderr == "revledger: the ledger holds no events of customer 'nobody'\n"


FIGURES = ("customers", "starting_mrr_exact", "ending_mrr_exact", "expansion_exact",
           "contraction_exact", "churn_exact", "nrr_exact", "grr_exact")


@pytest.mark.parametrize("options", [
    [], ["--cohort", "2023"], ["--segment", "tier=smb"], ["--known-at", "2000-01-01"],
])
def test_explain_nrr_adds_up_to_nrr_exactly(sqlite_url, options):
    feed = subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"),
                           "--customers", "300"], capture_output=True, check=True).stdout
    ingest_feed(sqlite_url, feed.splitlines())
    args = ["--start", "2024-01-31", "--end", "2024-12-31", *options]
    figures = json_of(sqlite_url, "nrr", *args)
    explained = json_of(sqlite_url, "explain", "nrr", *args)
    assert {k: explained["totals"][k] for k in FIGURES} == {k: figures[k] for k in FIGURES}
    rows = explained["customers"]
    assert len(rows) == figures["customers"]
    m = [(Fraction(r["starting_mrr_exact"]), Fraction(r["ending_mrr_exact"]), r["category"])
         for r in rows]
    total = {"churn": sum((m0 for m0, _, c in m if c == "churn"), Fraction(0)),
             "expansion": sum((m1 - m0 for m0, m1, c in m if c == "expansion"), Fraction(0)),
             "contraction": sum((m0 - m1 for m0, m1, c in m if c == "contraction"), Fraction(0)),
             "starting_mrr": sum((m0 for m0, _, _ in m), Fraction(0)),
             "ending_mrr": sum((m1 for _, m1, _ in m), Fraction(0))}
    assert {k: str(v) for k, v in total.items()} == {k: figures[f"{k}_exact"] for k in total}
    assert all(r["event_ids"] for r in rows if r["category"] != "flat")
    assert explained["manifest"] == figures["manifest"]


def explained(db_url: str, start: str, end: str, known_at: str | None = None
              ) -> tuple[list[list[str]], list[tuple]]:
    """`explain nrr`'s rows from the view, with whose events it asked the ledger for: the
    rule is given the engine and a reader of customers' events, never the ledger, so what
    the reader is asked is all it reads."""
    asked: list[list[str]] = []
    with open_ledger(db_url) as app:
        e, reflects = engine_for(app, known_at)
        read = customer_events(app, head_position(reflects))

        def recording(customers):
            asked.append(list(customers))
            return read(customers)

        rows = explain_nrr(e, start, end, recording, known_at=known_at)
    return asked, [(r.customer_id, r.starting_mrr / 100, r.ending_mrr / 100, r.category,
                    r.event_ids) for r in rows]


def test_explain_nrr_reads_the_view_and_the_events_of_its_cohort_only(ledger):
    """No replay: the cohort and its figures come from the view, and only the events of
    the cohort's customers whose MRR changed in the period are read, once, to name those
    behind each figure. c3 starts after the start: outside the cohort, its events are not
    read; nor are those of a cohort customer whose MRR the period left alone."""
    ingest_feed(ledger, jsonl(started("e6", "s3", "c3", "2024-02-10T00:00:00Z")).splitlines())
    start, end = "2024-02-01T00:00:00.000000Z", "2024-04-01T00:00:00.000000Z"
    asked, rows = explained(ledger, start, end)
    assert asked == [["c2"]]
    assert rows == [("c1", 100, 100, "flat", ()),  # e3 (quantity 2) was voided by e5
                    ("c2", 50, 0, "churn", ("e4",))]
    e3_recorded = json_of(ledger, "events")[2]["recorded_at"]  # before e4 and e5
    asked, rows = explained(ledger, start, end, known_at=e3_recorded)
    assert asked == [["c1"]]
    assert rows == [("c1", 100, 200, "expansion", ("e3",)),  # not voided yet
                    ("c2", 50, 50, "flat", ())]


def test_the_documented_roles_ingest_and_query_and_no_more(pg_url):
    """docs/operations.md's role block, run as written (with per-test role names)."""
    import re
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    docs = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- roles:.*?-->\n```sql\n(.*?)```", docs, re.S).group(1)
    suffix = uuid.uuid4().hex[:8]
    ingest_role, analyst_role = f"revledger_ingest_{suffix}", f"revledger_analyst_{suffix}"
    block = block.replace("revledger_ingest", ingest_role).replace(
        "revledger_analyst", analyst_role)
    ingest_feed(pg_url, jsonl(*FEED[:2]).splitlines())  # the owner creates the schema
    parts = urlsplit(pg_url)

    def as_role(role: str) -> str:
        return urlunsplit(parts._replace(netloc=f"{role}:change-me@{parts.hostname}:"
                                                f"{parts.port}"))

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(block)
    try:
        result = CliRunner().invoke(main, ["--db", as_role(ingest_role), "ingest", "-"],
                                    input=jsonl(*FEED[2:]))
        assert result.exit_code == 0, result.stderr
        nrr = ("nrr", "--start", "2024-01-31", "--end", "2024-03-31")
        assert json_of(as_role(analyst_role), *nrr)["customers"] == 2
        with psycopg.connect(pg_url, autocommit=True) as conn:  # an ingest cut short
            conn.execute("DELETE FROM engine_snapshot")
        assert json_of(as_role(analyst_role), *nrr)["customers"] == 2  # columns not stored
        code, output = verify(as_role(analyst_role))
        assert code == 0, output
        refused = CliRunner().invoke(main, ["--db", as_role(analyst_role), "ingest", "-"],
                                     input=jsonl(started("e9", "s9", "c9",
                                                         "2024-04-01T00:00:00Z")))
        assert refused.exit_code == 1
        assert "permission denied" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        with psycopg.connect(as_role(ingest_role)) as conn, pytest.raises(
            psycopg.Error, match="never updated or deleted"
        ):
            conn.execute("UPDATE revledger_events SET topic = topic")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for role in (ingest_role, analyst_role):
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")
