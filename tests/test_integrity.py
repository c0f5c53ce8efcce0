"""What `verify` detects of rows written around revledger, on both stores (docs/audit.md):
the index held to the events' bytes, every stored event held again to the contract and the
recording rules, forged rows appended by the documented ingest role; and what it cannot
detect (a valid rewrite with every link recomputed, a cut-off tail), where it says what it
can: the head, to compare with one kept elsewhere."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from cli import main
from services.ingest import ingest_feed
from tests.feeds import changed, jsonl, started, voided
from tests.intruder import Intruder, stream_id
from tests.test_audit import FEED  # e1 s1 c1, e2 s2 c2, e3 changes s1, e4 cancels s2, e5 voids e3

ROOT = Path(__file__).resolve().parent.parent

S1, S2, S3 = (stream_id(f"subscription:s{n}") for n in (1, 2, 3))  # s1: e1 e3 e5; s2: e2 e4


def cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, *args])
    return result.exit_code, (result.stdout + result.stderr).strip()


def verify(url: str) -> tuple[int, str]:
    return cli(url, "verify")


def head_of(url: str) -> tuple[int, str]:
    fields = json.loads(cli(url, "verify", "--format", "json")[1])
    return fields["head_position"], fields["head_chain_sha256"]


@pytest.fixture
def ledger(db_url) -> str:
    ingest_feed(db_url, jsonl(*FEED[:3]).splitlines())
    ingest_feed(db_url, jsonl(*FEED[3:]).splitlines())
    return db_url


@pytest.fixture
def owner(ledger) -> Intruder:
    """Plain SQL with the owner's rights (who can also drop the guards)."""
    return Intruder(ledger)


@pytest.fixture
def ingest_role(ledger) -> Iterator[Intruder]:
    """Plain SQL with the ingest role's rights: on PostgreSQL the role created as
    docs/operations.md says (the SQLite file has no roles: whoever may write it)."""
    if ledger.startswith("sqlite"):
        yield Intruder(ledger)
        return
    docs = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- roles:.*?-->\n```sql\n(.*?)```", docs, re.S).group(1)
    suffix = uuid.uuid4().hex[:8]
    roles = [f"revledger_ingest_{suffix}", f"revledger_analyst_{suffix}"]
    block = block.replace("revledger_ingest", roles[0]).replace("revledger_analyst", roles[1])
    with psycopg.connect(ledger, autocommit=True) as conn:
        conn.execute(block)
    parts = urlsplit(ledger)
    yield Intruder(urlunsplit(parts._replace(
        netloc=f"{roles[0]}:change-me@{parts.hostname}:{parts.port}")))
    with psycopg.connect(ledger, autocommit=True) as conn:
        for role in roles:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_an_untouched_ledger_passes_every_check(ledger):
    code, output = verify(ledger)
    assert code == 0, output
    assert "; 5 events valid under the contract and the recording rules, each indexed as " \
        "its bytes say; the projection of 2 customers" in output


# -- the index: each row recomputed from the event's bytes --------------------------------

def test_an_edited_index_row_is_named_even_after_a_replay_that_read_it(ledger, owner):
    """The index files events by customer for the projections: edited, it would move
    MRR on the next replay and the projection would agree with it."""
    owner.unguard()
    owner.run("UPDATE event_keys SET customer_id = 'c1' WHERE event_id = 'e2'")
    assert cli(ledger, "replay")[0] == 0
    code, output = verify(ledger)
    assert code == 1
    assert output == (f"revledger: verify FAILED at position {owner.stored('e2')[0]} (event "
                      "e2): its index row differs from its stored bytes (customer_id: 'c1', "
                      "the event says 'c2'); the chain of 6 events holds")


def test_a_deleted_index_row_is_named(ledger, owner):
    owner.unguard()
    position = owner.stored("e4")[0]
    owner.run("DELETE FROM event_keys WHERE position = ?", [position])
    assert cli(ledger, "replay")[0] == 0  # e4 unseen: s2 would never be cancelled
    code, output = verify(ledger)
    assert code == 1
    assert f"at position {position} (event e4): it has no index row: the projections do " \
        "not see it" in output


def test_an_index_row_of_no_event_is_named(ledger, ingest_role):
    ingest_role.run("INSERT INTO event_keys VALUES (99, 'ghost', 'x', 'subscription.started', "
                    "'c1', 's1', NULL)")
    code, output = verify(ledger)
    assert code == 1
    assert "at position 99 (event ghost): an index row at a position that holds no event" \
        in output


def test_a_void_filed_under_another_customer_is_named(ledger, owner):
    owner.unguard()
    owner.run("UPDATE event_keys SET customer_id = 'c2', subscription_id = 's2' "
              "WHERE event_id = 'e5'")
    code, output = verify(ledger)
    assert code == 1
    assert "(event e5): its index row files it under customer 'c2', subscription 's2'; its " \
        "target's are 'c1', 's1'" in output


# -- forged rows appended by the ingest role, links and index rows computed ---------------

AT = "2024-04-01T00:00:00Z"


def _lie_about_effective_at(state: dict[str, Any]) -> None:
    state["effective_at"] = "2020-01-01T00:00:00.000000Z"


FORGERIES = {
    "negative amount": (
        started("f1", "s3", "c3", AT, amount="-5.00"), S3, 1, "c3", "s3", {"opens": "s3"},
        "breaks the contract: amount: must be a decimal string of ASCII digits, >= 0"),
    "void of no event": (
        voided("f1", "nope"), S1, 4, "c1", "s1", {},
        "voids: the ledger holds no event 'nope'"),
    "void of a void": (
        voided("f1", "e5"), S1, 4, "c1", "s1", {}, "voids: 'e5' is itself a void"),
    "subscription changing hands": (
        changed("f1", "s1", "c2", AT, quantity=3), S1, 4, "c2", "s1", {},
        "customer_id: subscription 's1' belongs to customer 'c1', not 'c2'"),
    "withdrawn currency": (  # contract v2: any active ISO 4217 code, no other
        started("f1", "s3", "c3", AT, currency="DEM"), S3, 1, "c3", "s3", {"opens": "s3"},
        "breaks the contract: currency: DEM is not an active ISO 4217 currency code"),
    "envelope unlike its payload": (
        started("f1", "s3", "c3", AT), S3, 1, "c3", "s3",
        {"opens": "s3", "envelope": _lie_about_effective_at},
        "its stored effective_at ('2020-01-01T00:00:00.000000Z') is not its payload's "
        "('2024-04-01T00:00:00.000000Z')"),
    "stream version skipped": (
        changed("f1", "s1", "c1", AT, quantity=3), S1, 7, "c1", "s1", {},
        "version 7 of its stream follows version 3"),
    "another subscription's stream": (
        changed("f1", "s1", "c1", AT, quantity=3), S2, 3, "c1", "s1", {},
        "it is stored in the stream of subscription 's2', not in that of subscription 's1'"),
    "opening another stream": (
        started("f1", "s3", "c3", AT), stream_id("subscription:s9"), 1, "c3", "s3",
        {"opens": "s3"},
        "it opens another stream than that of subscription s3"),
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES)
def test_a_forged_event_appended_with_its_links_is_named(ledger, ingest_role, forgery):
    payload, stream, version, customer, subscription, how, problem = forgery
    position = ingest_role.append(payload, stream, version, customer=customer,
                                  subscription=subscription, **how)
    code, output = verify(ledger)
    assert code == 1, output
    assert output.startswith(f"revledger: verify FAILED at position {position} (event f1): "
                             f"{problem}"), output
    assert output.endswith("; the chain of 7 events holds")


@pytest.mark.parametrize(("forged", "unique"), [
    (changed("e1", "s1", "c1", AT, quantity=3), "event_id"),
    (voided("f1", "e3"), "voids"),  # a second void of e3
], ids=["repeated event id", "second void"])
def test_a_forged_row_the_index_refuses_is_named_without_its_index_row(
        ledger, ingest_role, forged, unique):
    with pytest.raises(Exception, match=f"(?i)unique.*{unique}|{unique}.*unique"):
        ingest_role.append(forged, S1, 4, customer="c1", subscription="s1")
    code, output = verify(ledger)
    assert code == 1
    assert f"({forged['event_id']}): it has no index row: the projections do not see it" \
        in output.replace("event ", "")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("statement", [
    "ALTER TABLE {events} DISABLE TRIGGER USER",
    "ALTER TABLE event_keys DISABLE TRIGGER USER",
    "DROP INDEX event_keys_voids",
    "ALTER TABLE event_keys DROP CONSTRAINT event_keys_event_id_key",
    "UPDATE event_keys SET customer_id = 'c1'",
    "DELETE FROM event_chain",
])
def test_the_ingest_role_can_only_append(ledger, ingest_role, statement):
    """What docs/operations.md promises of the role: the guards stay, rows stay."""
    with pytest.raises(psycopg.Error, match=r"must be owner|permission denied|never updated"):
        ingest_role.run(statement.format(events=ingest_role.events))


# -- rewrites by the owner, every later link recomputed -----------------------------------

def test_a_rewrite_that_breaks_the_contract_is_named(ledger, owner):
    owner.unguard()
    owner.rewrite("e2", lambda payload: payload.update(amount="-50.00"))
    assert verify(ledger)[1].startswith(
        f"revledger: verify FAILED at position {owner.stored('e2')[0]} (event e2): breaks "
        "the contract: amount: must be a decimal string")


def test_a_valid_rewrite_with_links_recomputed_passes_but_the_head_differs(ledger, owner):
    """Undetectable from the ledger alone (docs/audit.md): only a head kept elsewhere (a
    manifest, a checkpoint) shows it."""
    kept = head_of(ledger)
    owner.unguard()
    owner.rewrite("e2", lambda payload: payload.update(amount="500.00"))
    code, output = verify(ledger)
    assert code == 1  # the projection still holds what the events said
    assert "the projection of customer c2 differs from the reference fold" in output
    assert cli(ledger, "replay")[0] == 0  # a thorough intruder replays too
    assert verify(ledger)[0] == 0
    position, sha = head_of(ledger)
    assert position == kept[0] and sha != kept[1]


def test_a_cut_tail_passes_once_replayed_and_verify_names_the_shorter_head(ledger, owner):
    """Undetectable from the ledger alone (docs/audit.md): the head verify prints is the
    shorter one, which a head kept elsewhere shows."""
    kept = head_of(ledger)
    owner.unguard()
    owner.cut_tail()
    code, output = verify(ledger)
    assert code == 1  # the projection still holds the cut event's effect
    assert "the projection of customer c1 differs from the reference fold" in output
    assert cli(ledger, "replay")[0] == 0
    code, output = verify(ledger)
    assert code == 0
    position, sha = head_of(ledger)
    assert position == kept[0] - 1 and f"(head {position} {sha})" in output


# -- in one process or two ------------------------------------------------------------------

@pytest.mark.parametrize("parallel", [False, True], ids=["one process", "two processes"])
def test_a_break_of_the_events_is_reported_rather_than_the_projections_difference(
        ledger, ingest_role, parallel):
    """verify catches the projection up, forged event included: whatever comparing it
    finds, the forged event is what verify names."""
    from services.verify import verify_ledger

    assert verify_ledger(ledger, parallel=parallel).ok
    position = ingest_role.append(started("f1", "s3", "c3", AT, amount="-5.00"), S3, 1,
                                  customer="c3", subscription="s3", opens="s3")
    result = verify_ledger(ledger, parallel=parallel)
    assert (result.ledger_break.position, result.ledger_break.event_id) == (position, "f1")
    assert result.projection.difference is None and result.chain.problem is None


# -- properties of the check of each event, without a database --------------------------------

@pytest.fixture(scope="module")
def indexed_rows(tmp_path_factory) -> list[tuple]:
    """The stored events of FEED beside their index rows, as verify reads them."""
    from ledger.application import LedgerApplication

    url = f"sqlite:///{tmp_path_factory.mktemp('rows') / 'ledger.db'}"
    ingest_feed(url, jsonl(*FEED).splitlines())
    with LedgerApplication(url) as app:
        return list(app.recorder.iter_indexed())


KEY_COLUMNS = ("event_id", "content_sha256", "type", "customer_id", "subscription_id",
               "voids")


@given(data=st.data())
def test_any_edit_of_an_index_column_is_named_at_its_event(indexed_rows, data):
    """Every column of every index row is recomputed from the event's bytes (a void's
    customer and subscription are held to its target's across events instead)."""
    from ledger.recheck import Recheck, each_event

    assert each_event(indexed_rows, Recheck()) is None
    i = data.draw(st.integers(1, len(indexed_rows) - 1), label="event")  # 0: the settings
    column = data.draw(st.sampled_from(KEY_COLUMNS), label="column")
    row = list(indexed_rows[i])
    held = row[6 + KEY_COLUMNS.index(column)]
    assume(not (row[8] == "event.voided" and column in ("customer_id", "subscription_id")))
    value = data.draw(st.none() | st.text(max_size=8), label="value")
    assume(value != held)
    row[6 + KEY_COLUMNS.index(column)] = value
    found = each_event([*indexed_rows[:i], tuple(row), *indexed_rows[i + 1:]], Recheck())
    assert found is not None and found.position == row[0]
    assert found.problem == (f"its index row differs from its stored bytes ({column}: "
                             f"{value!r}, the event says {held!r})")


@given(amount=st.sampled_from(["-5.00", "1e3", "5,00", " 5", "١٢", "1000000000000", ""]))
def test_a_stored_amount_the_contract_refuses_is_named(indexed_rows, amount):
    from ledger.recheck import Recheck, each_event

    position, aggregate, version, topic, state, *key = indexed_rows[2]  # e2: 50.00
    forged = state.replace(b'"amount":"50.00"', b'"amount":' + json.dumps(amount).encode())
    assert forged != state
    found = each_event([indexed_rows[0], indexed_rows[1],
                        (position, aggregate, version, topic, forged, *key)], Recheck())
    assert (found.position, found.event_id) == (position, "e2")
    assert found.problem.startswith("breaks the contract: amount: must be a decimal string")
