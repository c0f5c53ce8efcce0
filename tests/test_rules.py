"""The ledger's rules (`ledger.rules`), pure: no database, milliseconds an example.

What the ledger knows is a plain in-memory `Facts`; a batch landing is its decisions
merged in. The properties: the rules agree with a reference written here record by record
(the contract, as plainly as it can be said); deciding in batches, each on the one still
being written (a layer), is deciding at once; a feed the contract accepts is accepted
whole. Worked examples fix each reason's wording.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checks import check_line
from ledger.feed import Checked
from ledger.kinds import FX_RATE, PRICED, SUBSCRIPTION_TYPES, VOID
from ledger.rules import (
    Decided,
    Facts,
    Head,
    Layer,
    Recording,
    decide,
    lookups,
    outcomes,
    stamp,
    streams,
)
from tests.feeds import jsonl
from tests.strategies import feeds

CURRENCY = "USD"
CUSTOMER_TYPES = ("customer.created", "customer.updated")
IDS = [f"e{i}" for i in range(1, 9)]
MANY = settings(max_examples=400)  # milliseconds each: many more than a database allows


def record(line: int, event_id: str, type_: str, *, sha: str = "h", customer: str | None = None,
           sub: str | None = None, voids: str | None = None,
           currency: str | None = None) -> Checked:
    """A checked record as `ledger.checks` makes them (its raw line is not read here)."""
    return Checked(line, b"{}", sha, event_id, type_, None, customer, sub, voids, currency)


@st.composite
def records(draw: st.DrawFn) -> list[Checked]:
    """Records that depend on each other: few ids, so repeats (the same content or not),
    voids of held, missing, voided and void events, subscriptions named with another
    customer, prices in other currencies (all taken, contract v2), exchange rates."""
    drawn = []
    for line in range(1, draw(st.integers(1, 16)) + 1):
        event_id = draw(st.sampled_from(IDS))
        sha = draw(st.sampled_from(["h", "h", "h", "other"]))
        kind = draw(st.sampled_from(["customer", "subscription", "subscription", "void",
                                     "rate"]))
        if kind == "rate":
            drawn.append(record(line, event_id, FX_RATE, sha=sha))
            continue
        if kind == "void":
            drawn.append(record(line, event_id, VOID, sha=sha,
                                voids=draw(st.sampled_from([*IDS, "missing"]))))
            continue
        customer = draw(st.sampled_from(["c1", "c2"]))
        if kind == "customer":
            drawn.append(record(line, event_id, draw(st.sampled_from(CUSTOMER_TYPES)),
                                sha=sha, customer=customer))
            continue
        type_ = draw(st.sampled_from(sorted(SUBSCRIPTION_TYPES)))
        currency = draw(st.sampled_from([None, CURRENCY, CURRENCY, "EUR"]))
        drawn.append(record(line, event_id, type_, sha=sha, customer=customer,
                            sub=draw(st.sampled_from(["s1", "s2", "s3"])),
                            currency=currency if type_ in PRICED else None))
    return drawn


def reference(feed: list[Checked]) -> list[tuple[Any, ...]]:
    """Each record's outcome by the contract, one record after the other: (line, status,
    reason, stream, version) - the place of an accepted one, the reason of a refused one."""
    recorded: dict[str, Checked] = {}
    stream_of: dict[str, str] = {}  # event_id -> the stream it went to
    voided: dict[str, str] = {}
    versions: dict[str, int] = {}
    owners: dict[str, str] = {}  # subscription -> its customer
    told = []
    for r in feed:
        def refuse(reason: str, r: Checked = r) -> None:
            told.append((r.line, "rejected", reason, None, None))

        if r.event_id in recorded:
            if recorded[r.event_id].sha == r.sha:
                told.append((r.line, "duplicate", None, None, None))
            else:
                told.append((r.line, "conflict",
                             "conflict: event_id already recorded with different content",
                             None, None))
            continue
        if r.type == VOID:
            target = recorded.get(r.voids)
            if target is None:
                refuse(f"voids: the ledger holds no event {r.voids!r}")
                continue
            if target.type == VOID:
                refuse(f"voids: {r.voids!r} is itself a void")
                continue
            if r.voids in voided:
                refuse(f"voids: {r.voids!r} is already voided by {voided[r.voids]!r}")
                continue
            stream = stream_of[target.event_id]
            voided[r.voids] = r.event_id
        else:
            if r.type == FX_RATE:  # contract v2: about no customer, a stream of its own
                stream = "r:" + r.event_id
            elif r.subscription_id is not None:
                owner = owners.setdefault(r.subscription_id, r.customer_id)
                if owner != r.customer_id:
                    refuse(f"customer_id: subscription {r.subscription_id} belongs to "
                           f"customer {owner}")
                    continue
                stream = "s:" + r.subscription_id
            else:
                stream = "c:" + r.customer_id
        recorded[r.event_id] = r
        stream_of[r.event_id] = stream
        versions[stream] = versions.get(stream, 0) + 1
        told.append((r.line, "accepted", None, stream, versions[stream]))
    return told


def told(*decisions: Decided) -> list[tuple[Any, ...]]:
    """The decisions in the reference's terms, in feed order."""
    places = {p.event.line: (p.stream, p.version) for d in decisions for p in d.accepted}
    return sorted((o.line, o.status, o.reason, *places.get(o.line, (None, None)))
                  for d in decisions for o in outcomes(d))


def land(store: Facts, batch: Layer) -> None:
    """A batch written: what it recorded is the store's."""
    store.recordings.update(batch.recordings)
    store.voids.update(batch.voids)
    store.heads.update(batch.heads)


@MANY
@given(feed=records())
def test_the_rules_decide_as_the_contract_says_record_by_record(feed):
    assert told(decide(feed, Facts())) == reference(feed)


@MANY
@given(feed=records(), data=st.data())
def test_deciding_in_batches_each_on_the_one_being_written_is_deciding_at_once(feed, data):
    """Each batch is decided on the store as a look-up found it, under the batch still
    being written (a layer); that one may have landed before the look-up or not."""
    cuts = sorted(data.draw(st.sets(st.integers(1, len(feed)), max_size=4)) | {len(feed)})
    store, pending, decisions, start = Facts(), None, [], 0
    for cut in cuts:
        batch = feed[start:cut]
        landed_first = pending is not None and data.draw(st.booleans(), label="landed")
        if landed_first:
            land(store, pending)
        # As a look-up finds them: only what this batch asks about.
        event_ids, targets = lookups(batch)
        seen = Facts({i: r for i, r in store.recordings.items() if i in event_ids | targets},
                     {t: v for t, v in store.voids.items() if t in targets})
        known = seen if pending is None else pending.over(seen)
        for stream in streams(batch, known):
            if (head := store.heads.get(stream)) is not None:
                seen.heads[stream] = head
        decided = decide(batch, known)
        if pending is not None and not landed_first:
            land(store, pending)
        pending, start = decided, cut
        decisions.append(decided)
    assert told(*decisions) == told(decide(feed, Facts()))


@settings(max_examples=100)
@given(drawn=feeds(max_ingests=4))
def test_a_feed_the_contract_accepts_is_accepted_whole_and_repeats_are_duplicates(drawn):
    store = Facts()
    for ingest, recorded in zip(drawn.ingests, drawn.recorded, strict=True):
        checked = [check_line(n, line) for n, line in enumerate(jsonl(*ingest).splitlines(), 1)]
        assert all(isinstance(c, Checked) for c in checked)
        decided = decide(checked, store)
        land(store, decided)
        assert decided.rejected == []
        assert [p.event.event_id for p in decided.accepted] == [e["event_id"] for e in recorded]
        assert len(decided.duplicates) == len(ingest) - len(recorded)
    assert set(store.recordings) == {e["event_id"] for e in drawn.events}


def reasons(known: Facts, *feed: Checked) -> list[str]:
    return [r.reason for r in decide(feed, known).rejected]


S1 = record(1, "e1", "subscription.started", customer="c1", sub="s1", currency="USD")
KNOWN = Facts(
    {"e1": Recording("h", "subscription.started", "s:s1", "c1", "s1"),
     "v1": Recording("h", VOID, "s:s1", "c1", "s1"),
     "e0": Recording("h", "customer.created", "c:c1", "c1", None)},
    {"e1": "v1"},
    {"s:s1": Head(2, "c1"), "c:c1": Head(1, "c1")},
)


def test_each_refusal_reads_as_it_always_has():
    assert reasons(KNOWN, S1._replace(sha="other")) == [
        "conflict: event_id already recorded with different content"]
    assert reasons(KNOWN, record(1, "v2", VOID, voids="nope")) == [
        "voids: the ledger holds no event 'nope'"]
    assert reasons(KNOWN, record(1, "v2", VOID, voids="v1")) == [
        "voids: 'v1' is itself a void"]
    assert reasons(KNOWN, record(1, "v2", VOID, voids="e1")) == [
        "voids: 'e1' is already voided by 'v1'"]
    assert reasons(KNOWN, S1._replace(event_id="e2", customer_id="c2")) == [
        "customer_id: subscription s1 belongs to customer c1"]
    assert reasons(Facts(), S1._replace(currency="EUR")) == []  # contract v2: any currency


def test_an_exchange_rate_is_a_stream_of_its_own_and_its_void_joins_it():
    decided = decide([record(1, "r1", FX_RATE), record(2, "v9", VOID, voids="r1")], Facts())
    assert [(p.stream, p.version, p.customer_id, p.subscription_id)
            for p in decided.accepted] == [("r:r1", 1, None, None), ("r:r1", 2, None, None)]


def test_a_void_goes_to_its_targets_stream_under_its_targets_customer():
    decided = decide([record(1, "v2", VOID, voids="e0")], KNOWN)
    [placed] = decided.accepted
    assert (placed.stream, placed.version, placed.customer_id, placed.subscription_id) == (
        "c:c1", 2, "c1", None)
    assert decided.voided_by("e0") == "v2"


def test_a_batch_answers_before_what_it_lies_on_and_holds_only_its_own():
    decided = decide([S1._replace(event_id="e2")], KNOWN)
    assert decided.head("s:s1") == Head(3, "c1")
    assert decided.recorded("e1") == KNOWN.recorded("e1")  # from below
    assert set(decided.recordings) == {"e2"}
    fresher = Facts()
    assert decided.over(fresher).recorded("e1") is None  # the layer below is replaced
    assert decided.over(fresher).recorded("e2") == decided.recorded("e2")


def test_what_a_batch_asks_of_the_store():
    feed = [S1, record(2, "v2", VOID, voids="e0"), record(3, "v3", VOID, voids="v1"),
            record(4, "e5", "customer.updated", customer="c2")]
    assert lookups(feed) == ({"e1", "v2", "v3", "e5"}, {"e0", "v1"})
    assert streams(feed, KNOWN) == {"s:s1", "c:c1", "c:c2"}  # not a void's


def test_a_batch_is_stamped_after_the_last_recording_whatever_the_clock_says():
    last = datetime(2025, 1, 1, tzinfo=UTC)
    assert stamp(last + timedelta(seconds=1), last) == last + timedelta(seconds=1)
    assert stamp(last, last) == last + timedelta(microseconds=1)  # strictly after
    assert stamp(last - timedelta(days=9), last) == last + timedelta(microseconds=1)
    assert stamp(last, None) == last  # an empty ledger


def test_the_rules_load_nothing_of_checking_processes_or_stores():
    """Importing the pure rules loads no process pool, no database driver and not the
    contract's validation: they are data in, decisions out. (A process of its own: this
    one has loaded everything already.)"""
    heavy = ("multiprocessing", "sqlite3", "psycopg", "pydantic")
    script = f"import ledger.rules, sys; assert not set({heavy!r}) & set(sys.modules)"
    subprocess.run([sys.executable, "-c", script], check=True)
