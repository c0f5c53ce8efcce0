"""Ingest, on both stores: idempotency, conflicts, voids, rejected lines, the CLI contract."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from ledger.aggregates import Subscription, subscription_uuid
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.lookup import Heads
from ledger.rules import Outcome
from projections.facts import decode_fact
from services.events import list_events
from services.ingest import ingest_feed
from services.ledger import open_ledger
from services.verify import verify_ledger
from tests.feeds import cancelled, changed, jsonl, started, voided

FEED = [
    started("e1", "s1", "c1", "2024-01-01T00:00:00Z"),
    started("e2", "s2", "c2", "2024-01-05T00:00:00Z", amount="50.00", note="kept"),
    changed("e3", "s1", "c1", "2024-02-01T00:00:00Z", quantity=2),
    cancelled("e4", "s2", "c2", "2024-03-01T00:00:00Z"),
]


def ingest(url: str, *events: dict, raw: bytes = b""):
    rejects = []
    result = ingest_feed(url, (jsonl(*events) + raw).splitlines(), on_reject=rejects.append)
    return result.summary, [str(r) for r in rejects]


def snapshot(url: str) -> list[tuple]:
    """Everything an auditor sees, minus the recording instants."""
    return [
        (e["position"], e["effective_at"], e["type"], e["event_id"], e["payload"])
        for e in list_events(url)
    ]


def test_every_good_event_is_stored_with_its_whole_payload(db_url):
    summary, rejects = ingest(db_url, *FEED)
    assert (summary.accepted, summary.duplicates, summary.rejected, rejects) == (4, 0, 0, [])
    events = list_events(db_url)
    assert [e["event_id"] for e in events] == ["e1", "e2", "e3", "e4"]
    assert events[1]["payload"]["note"] == "kept"
    assert events[1]["effective_at"] == "2024-01-05T00:00:00.000000Z"
    assert all(e["recorded_at"].endswith("Z") for e in events)
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)


def test_the_stored_payload_is_the_line_as_sent_whatever_its_spacing_and_escapes(db_url):
    """The line itself is stored as the payload (it is checked JSON): its spaces, key order
    and escapes may stay, but it reads back as exactly the record sent."""
    line = (rb'  { "type" : "subscription.started", "event_id":"e1","customer_id":"c1",'
            rb'"subscription_id":"s1","effective_at":"2024-01-01T00:00:00Z",'
            rb'"plan":"caf\u00e9 \/","amount":"10.00","currency":"USD","interval":"month",'
            rb'"n":[1, 2.5, {"x": null}]}' b"\t")
    summary, rejects = ingest(db_url, raw=line)
    assert (summary.accepted, rejects) == (1, [])
    [event] = list_events(db_url)
    assert event["payload"] == orjson.loads(line)
    assert event["payload"]["plan"] == "café /"
    assert verify_ledger(db_url).ok


def test_ingesting_twice_leaves_an_identical_store_and_counts_duplicates(db_url):
    ingest(db_url, *FEED)
    before = list_events(db_url)
    summary, rejects = ingest(db_url, *FEED)
    assert (summary.accepted, summary.duplicates, rejects) == (0, 4, [])
    assert list_events(db_url) == before


def test_duplicates_inside_one_feed_are_counted_once_stored(db_url):
    summary, _ = ingest(db_url, FEED[0], FEED[0], FEED[1])
    assert (summary.accepted, summary.duplicates) == (2, 1)


def test_same_content_in_another_key_order_is_a_duplicate(db_url):
    ingest(db_url, FEED[0])
    reordered = dict(reversed(list(FEED[0].items())))
    summary, _ = ingest(db_url, reordered)
    assert (summary.accepted, summary.duplicates) == (0, 1)


def test_same_id_with_different_content_is_a_conflict_and_stores_nothing(db_url):
    ingest(db_url, FEED[0])
    summary, rejects = ingest(db_url, {**FEED[0], "amount": "120.00"}, FEED[1])
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert rejects == ["line 1: e1: conflict: event_id already recorded with different content"]
    assert [e["payload"]["amount"] for e in list_events(db_url)] == ["100.00", "50.00"]


def test_a_conflict_inside_one_feed_keeps_the_first(db_url):
    summary, rejects = ingest(db_url, FEED[0], {**FEED[0], "amount": "1.00"})
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert rejects[0].startswith("line 2: e1: conflict")


def test_bad_lines_are_reported_one_per_line_and_good_ones_kept(db_url):
    raw = b'{"event_id": "broken",\n\n[1]\n' + jsonl({**FEED[1], "amount": 50})
    summary, rejects = ingest(db_url, FEED[0], raw=raw)
    assert rejects == [
        "line 2: -: invalid JSON (unexpected end of data)",
        "line 4: -: not a JSON object",
        'line 5: e2: amount: 50 is a JSON number; write it as a decimal string: "50.00"',
    ]
    assert (summary.accepted, summary.rejected) == (1, 3)
    assert [e["event_id"] for e in list_events(db_url)] == ["e1"]


def test_a_subscription_keeps_its_customer(db_url):
    ingest(db_url, FEED[0])
    _summary, rejects = ingest(db_url, changed("e9", "s1", "c2", "2024-02-01T00:00:00Z", plan="x"))
    assert rejects == ["line 1: e9: customer_id: subscription s1 belongs to customer c1"]


def test_events_in_any_active_currency_are_taken_and_others_refused(db_url):
    """contract v2: every amount stays in the currency it was billed in."""
    _summary, rejects = ingest(db_url, {**FEED[0], "currency": "EUR"})
    assert rejects == []
    _summary, rejects = ingest(db_url, {**FEED[0], "event_id": "e1b", "currency": "XYZ"})
    assert rejects == ["line 1: e1b: currency: XYZ is not an active ISO 4217 currency code"]


def test_a_field_of_another_event_type_sent_as_an_extra_is_kept_but_routes_nothing(db_url):
    """Unknown fields are kept whatever their names: one another type defines (a customer
    event's `subscription_id`, a cancellation's `currency`, a start's `voids`) neither
    moves the event to another stream nor is checked as that type's field."""
    customer = {"event_id": "e0", "type": "customer.created",
                "effective_at": "2024-01-01T00:00:00Z", "customer_id": "c1", "subscription_id": 5}
    summary, rejects = ingest(
        db_url, customer, started("e1", "s1", "c2", "2024-01-02T00:00:00Z", voids="e0"),
        {**cancelled("e2", "s1", "c2", "2024-02-01T00:00:00Z"), "currency": "EUR"},
    )
    assert (summary.accepted, rejects) == (3, [])
    assert [e["event_id"] for e in list_events(db_url, customer="c1")] == ["e0"]
    assert [e["event_id"] for e in list_events(db_url, subscription="s1")] == ["e1", "e2"]
    with open_ledger(db_url) as app:  # as the projections read them
        recorder = app.ledger_recorder
        facts = [decode_fact(position, state) for position, state
                 in recorder.iter_states(recorder.max_notification_id())]
        streams = [(f.event_id, f.customer_id, f.subscription_id) for f in facts if f]
    assert streams == [("e0", "c1", None), ("e1", "c2", "s1"), ("e2", "c2", "s1")]
    # A void's stream is its target's: the projection brings c2 up to date, not "c9".
    assert ingest(db_url, voided("e3", "e1", customer_id="c9"))[1] == []
    assert verify_ledger(db_url).ok


def test_out_of_order_events_are_stored_not_refused(db_url):
    summary, rejects = ingest(db_url, FEED[3], FEED[2], FEED[1], FEED[0])
    assert (summary.accepted, rejects) == (4, [])


class TestVoids:
    def test_a_void_of_a_held_event_is_stored(self, db_url):
        ingest(db_url, *FEED)
        summary, rejects = ingest(db_url, voided("v1", "e3", reason="entered twice"))
        assert (summary.accepted, rejects) == (1, [])
        (void,) = list_events(db_url, type="event.voided")
        assert (void["customer_id"], void["subscription_id"]) == (None, None)
        assert [e["event_id"] for e in list_events(db_url, customer="c1")] == ["e1", "e3", "v1"]

    def test_a_void_may_follow_its_target_in_the_same_feed(self, db_url):
        summary, rejects = ingest(db_url, FEED[0], voided("v1", "e1"))
        assert (summary.accepted, rejects) == (2, [])

    @pytest.mark.parametrize(
        ("void", "expected"),
        [
            (voided("v2", "nope"), "line 1: v2: voids: the ledger holds no event 'nope'"),
            (voided("v2", "v1"), "line 1: v2: voids: 'v1' is itself a void"),
            (voided("v2", "e1"), "line 1: v2: voids: 'e1' is already voided by 'v1'"),
        ],
    )
    def test_a_void_must_name_a_held_event_not_a_void_and_not_voided(self, db_url, void, expected):
        ingest(db_url, FEED[0], voided("v1", "e1"))
        _summary, rejects = ingest(db_url, void)
        assert rejects == [expected]


    def test_a_void_of_a_recorded_void_of_a_customer_event_is_refused_not_a_crash(
        self, db_url
    ):
        """The void recorded earlier is indexed under its target's customer and no
        subscription: it is refused as a void, whatever its target's stream."""
        customer = {"event_id": "e0", "type": "customer.created",
                    "effective_at": "2024-01-01T00:00:00Z", "customer_id": "c1"}
        ingest(db_url, customer, voided("v1", "e0"))
        _summary, rejects = ingest(db_url, voided("v2", "v1"))
        assert rejects == ["line 1: v2: voids: 'v1' is itself a void"]


class TestCommandLine:
    def run(self, db_url, *args, input=None):
        return CliRunner().invoke(main, ["--db", db_url, *args], input=input)

    def test_stdin_rejects_file_summary_and_exit_status(self, db_url, tmp_path):
        bad = jsonl({**FEED[1], "amount": 50})
        rejects = tmp_path / "rejects.jsonl"
        result = self.run(db_url, "ingest", "--rejects", str(rejects), "-",
                          input=jsonl(FEED[0]) + bad)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0] == (
            'line 2: e2: amount: 50 is a JSON number; write it as a decimal string: "50.00"')
        assert result.stderr.splitlines()[1].startswith("accepted 1, duplicates 0, rejected 1 in ")
        assert "events/s); projection updated in " in result.stderr
        assert rejects.read_bytes() == bad
        assert "Traceback" not in result.output

    def test_a_clean_feed_exits_zero_and_events_lists_it(self, db_url, tmp_path):
        feed = tmp_path / "feed.jsonl"
        feed.write_bytes(jsonl(*FEED))
        assert self.run(db_url, "ingest", str(feed)).exit_code == 0
        listed = self.run(db_url, "events", "--subscription", "s1", "--format", "json")
        assert [e["event_id"] for e in __import__("json").loads(listed.stdout)] == ["e1", "e3"]
        as_csv = self.run(db_url, "events", "--format", "csv").stdout.splitlines()
        assert as_csv[0] == ("position,recorded_at,effective_at,type,event_id,customer_id,"
                             "subscription_id,payload,chain_sha256")
        assert len(as_csv) == 5

    def test_an_unreachable_database_is_one_line_and_exit_one(self):
        result = CliRunner().invoke(
            main, ["--db", "postgresql://nobody:x@127.0.0.1:1/none", "events"]
        )
        assert result.exit_code == 1
        assert result.stderr.startswith("revledger: cannot open postgresql://nobody:***@127.0.0.1:1")
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_feed_of_many_batches_checked_in_parallel_is_recorded_in_feed_order(db_url):
    feed = [*FEED, FEED[0], voided("e5", "e3"), changed("e6", "s1", "c2", "2024-04-01T00:00:00Z",
                                                           quantity=3)]
    rejects: list[str] = []
    with open_ledger(db_url) as app:
        summary = Ingestor(app, batch_size=2, parallel=True).ingest(
            numbered_lines(jsonl(*feed).splitlines()), lambda r: rejects.append(str(r))
        )
    assert (summary.accepted, summary.duplicates, summary.rejected) == (5, 1, 1)
    assert rejects == ["line 7: e6: customer_id: subscription s1 belongs to customer c1"]
    assert [e["event_id"] for e in list_events(db_url)] == ["e1", "e2", "e3", "e4", "e5"]


def test_recorded_streams_reconstitute_as_eventsourcing_aggregates(db_url):
    ingest(db_url, *FEED, voided("e5", "e3"))
    with open_ledger(db_url) as app:
        subscription = app.repository.get(subscription_uuid("s1"))
    assert isinstance(subscription, Subscription)
    assert (subscription.key, subscription.customer_id) == ("s1", "c1")
    assert subscription.version == subscription.count == 3  # e1, e3 and the void of e3


def test_a_clock_gone_back_still_records_each_batch_after_the_last(db_url):
    """Recording instants never decrease along the ledger's order (what it knew at an
    instant is a prefix of it): a batch is stamped just after the last if need be."""
    back = datetime(2000, 1, 1, tzinfo=UTC)
    with open_ledger(db_url) as app:
        Ingestor(app, parallel=False).ingest(numbered_lines(jsonl(FEED[0]).splitlines()))
        Ingestor(app, batch_size=1, parallel=False, clock=lambda: back).ingest(
            numbered_lines(jsonl(*FEED[1:]).splitlines()))
    stamps = [e["recorded_at"] for e in list_events(db_url)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(FEED)
    assert stamps[0] > "2000-01-01T00:00:00.000000Z"
    assert verify_ledger(db_url).ok


@st.composite
def hostile_feeds(draw) -> list[dict]:
    """Feeds whose records depend on earlier ones: continued streams, duplicates, the same
    id with other content, voids of held, missing, voided and void events, a subscription
    named with another customer."""
    feed: list[dict] = []
    for n in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["start", "change", "repeat", "conflict", "void", "move"]))
        sub = draw(st.sampled_from(["s1", "s2", "s3"]))
        customer = {"s1": "c1", "s2": "c1", "s3": "c2"}[sub]
        day = f"2024-0{draw(st.integers(1, 9))}-01T00:00:00Z"
        if kind in ("repeat", "conflict") and feed:
            event = dict(draw(st.sampled_from(feed)))
            if kind == "conflict":
                event["note"] = f"other {n}"
        elif kind == "void":
            target = draw(st.sampled_from([e["event_id"] for e in feed] + ["missing"]))
            event = voided(f"v{n}", target)
        elif kind == "move":
            event = changed(f"e{n}", sub, "c9", day, quantity=2)
        elif kind == "change":
            event = changed(f"e{n}", sub, customer, day, quantity=draw(st.integers(1, 3)))
        else:
            event = started(f"e{n}", sub, customer, day)
        feed.append(event)
    return feed


def recorded(
    url: str, feed: list[dict], batch_size: int, parallel: bool = False, **options: Any
) -> tuple[list, list, list]:
    """What ingesting `feed` in batches of `batch_size` reports and stores (with a cache of
    stream heads too small to hold the streams of the batch being written); `options` go
    to the `Ingestor`."""
    outcomes: list[Outcome] = []
    with open_ledger(url) as app:
        Ingestor(app, batch_size=batch_size, cache_size=1, parallel=parallel,
                 **options).ingest(
            numbered_lines(jsonl(*feed).splitlines()), on_outcome=outcomes.append
        )
        keys = stored_keys(app, feed)
    return outcomes, keys, snapshot(url)


def stored_keys(app, feed: list[dict]) -> list[tuple]:
    """Where each event of the feed is stored: its aggregate and version."""
    return sorted(
        (event_id, row.originator_id, row.originator_version)
        for event_id in {e["event_id"] for e in feed}
        for row in app.ledger_recorder.select_events_by({"event_id": event_id})
    )


@pytest.mark.parametrize("fresh_db", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(feed=hostile_feeds(), batch_size=st.integers(1, 3), parallel=st.booleans())
def test_a_feed_in_small_batches_is_recorded_as_in_one_batch(fresh_db, feed, batch_size,
                                                             parallel):
    """Each batch is decided while the one before it is written (in a thread on
    PostgreSQL, in a process on SQLite when `parallel`), as if that one had landed: whatever
    the batches, the outcomes and the store are the same."""
    assert (recorded(fresh_db(), feed, batch_size, parallel)
            == recorded(fresh_db(), feed, len(feed)))


def test_a_new_sqlite_ledger_has_large_pages_and_an_old_one_keeps_its_own(tmp_path):
    def layout(path) -> tuple[int, str]:
        with sqlite3.connect(path) as conn:
            return (conn.execute("PRAGMA page_size").fetchone()[0],
                    conn.execute("PRAGMA journal_mode").fetchone()[0])

    new, old = tmp_path / "new.db", tmp_path / "old.db"
    with open_ledger(f"sqlite:///{new}"):
        pass
    with sqlite3.connect(old) as conn:  # as a ledger made before had it
        conn.execute("CREATE TABLE before (x)")
    result = ingest_feed(f"sqlite:///{old}", jsonl(FEED[0]).splitlines())
    assert result.summary.accepted == 1
    assert layout(new) == (16384, "wal")
    assert layout(old) == (4096, "wal")


def test_the_cache_of_stream_heads_stays_within_its_size_keeping_the_latest():
    heads = Heads(3)
    heads.update({"a": 1, "b": 2})
    heads.update({"c": 3, "d": 4})
    assert heads == {"b": 2, "c": 3, "d": 4}
    heads.update({"w": 5, "x": 6, "y": 7, "z": 8})  # a batch of more streams than it holds
    assert heads == {"x": 6, "y": 7, "z": 8}
