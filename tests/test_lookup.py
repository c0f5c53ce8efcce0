"""What deciding a batch reads of the store (`ledger.lookup`), pure: no database.

The store is a fake recorder holding index rows and stream heads in memory, answering the
two reads `ledger/queries.py` defines (`select_keys_where`, `select_heads`) and noting each
query it answers. The rules, worked one example each: a batch's ids and its voids'
targets are read in one statement; a stream's head comes from the batch being written,
else from the cache, else from one query for all the misses; `landed` drops the batch
being written, `forget` drops it and the cache; a full cache drops its older half, and a
head no longer cached is a query, never a wrong answer. The property: whatever the cache
size, the batches, the writes landing before a look-up or after it and other writers
moving the store on (even before the batch being written, which is then refused),
deciding on `StoreLookup.known` is deciding on an in-memory `Facts` holding the same
ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.aggregates import customer_uuid, rate_uuid, subscription_uuid
from ledger.feed import Checked
from ledger.kinds import FX_RATE, VOID
from ledger.lookup import Heads, StoreLookup
from ledger.recorder import KeyRow
from ledger.rules import Decided, Facts, Head, decide
from tests.test_rules import land, record, told

Query = tuple[str, object]  # ("keys", {column: values}) or ("heads", {aggregate ids})


def aggregate_id(stream: str) -> UUID:
    """A stream's aggregate id, as the ledger names its aggregates (`ledger.aggregates`)."""
    kind, key = stream[:2], stream[2:]
    return {"s:": subscription_uuid, "c:": customer_uuid, "r:": rate_uuid}[kind](key)


class FakeRecorder:
    """The store as `StoreLookup` reads it: the index rows of recorded events and the
    heads of their streams, in memory. It answers the two reads of `ledger/queries.py` as
    they are defined there (no query for nothing asked) and notes each in `asked`."""

    def __init__(self) -> None:
        self.rows: list[KeyRow] = []
        # aggregate id -> (last version, the opening event's customer, else its key)
        self.streams: dict[UUID, tuple[int, str | None]] = {}
        self.asked: list[Query] = []

    def select_keys_where(self, tests: dict[str, Iterable[str]]) -> list[KeyRow]:
        asked = {column: set(values) for column, values in tests.items() if values}
        if not asked:
            return []
        self.asked.append(("keys", asked))
        return [row for row in self.rows
                if any(getattr(row, column) in values for column, values in asked.items())]

    def select_heads(self, ids: Sequence[UUID]) -> list[tuple[UUID, int, str | None]]:
        if not ids:
            return []
        self.asked.append(("heads", set(ids)))
        return [(i, *self.streams[i]) for i in ids if i in self.streams]

    def write(self, decided: Decided, ids: dict[str, UUID]) -> None:
        """What `Ingestor.write` stores of a batch: an index row per accepted event (a
        void's under its target's customer and subscription), each stream's new head."""
        for c, stream, version, customer_id, subscription_id in decided.accepted:
            self.rows.append(KeyRow(len(self.rows) + 1, c.event_id, c.sha, c.type,
                                    customer_id, subscription_id, c.voids))
            opener = customer_id if subscription_id is not None else stream[2:]
            _, owner = self.streams.get(ids[stream], (0, opener))
            self.streams[ids[stream]] = (version, owner)

    def queries(self) -> list[str]:
        """The kinds of the queries answered since last asked."""
        kinds, self.asked = [kind for kind, _ in self.asked], []
        return kinds


def stored(*batches: list[Checked]) -> FakeRecorder:
    """A store holding these batches, each decided on the ones before."""
    store, ledger = FakeRecorder(), Facts()
    for batch in batches:
        decided = decide(batch, ledger)
        land(ledger, decided)
        store.write(decided, {stream: aggregate_id(stream) for stream in decided.heads})
    store.asked = []
    return store


def places(decided: Decided) -> list[tuple[str, str, int]]:
    """(event id, stream, version) of each accepted record."""
    return [(p.event.event_id, p.stream, p.version) for p in decided.accepted]


def expecting(lookup: StoreLookup, batch: list[Checked]) -> tuple[Decided, dict[str, UUID]]:
    """`batch` decided on the look-up, then handed to it as the batch being written."""
    known, ids = lookup.known(batch)
    decided = decide(batch, known)
    lookup.expect(decided, ids)
    return decided, ids


def sub(line: int, event_id: str, subscription: str, customer: str = "c1") -> Checked:
    return record(line, event_id, "subscription.changed", customer=customer, sub=subscription)


STORE = [sub(1, "e1", "s1"), sub(2, "e2", "s1"),
         record(3, "e3", "customer.created", customer="c2"), record(4, "e4", FX_RATE)]


# -- worked examples, one a rule -------------------------------------------------------------


def test_a_batchs_ids_and_its_voids_targets_are_read_in_one_statement():
    store = stored(STORE, [record(1, "v0", VOID, voids="e1")])
    lookup = StoreLookup(store, cache_size=10)
    batch = [sub(1, "e5", "s1"), record(2, "v1", VOID, voids="e1"),
             record(3, "v2", VOID, voids="e3"), sub(4, "e2", "s1")]
    known, _ = lookup.known(batch)
    assert store.asked[0] == ("keys", {"event_id": {"e5", "v1", "v2", "e2", "e1", "e3"},
                                       "voids": {"e1", "e3"}})
    decided = decide(batch, known)
    assert places(decided) == [("e5", "s:s1", 4), ("v2", "c:c2", 2)]
    assert [r.reason for r in decided.rejected] == ["voids: 'e1' is already voided by 'v0'"]
    assert [d.event_id for d in decided.duplicates] == ["e2"]


def test_heads_not_held_are_read_in_one_query_for_all_of_them():
    store = stored(STORE)
    lookup = StoreLookup(store, cache_size=10)
    batch = [sub(1, "e5", "s1"), record(2, "e6", "customer.updated", customer="c2"),
             sub(3, "e7", "s9", customer="c9"), record(4, "v1", VOID, voids="e4")]
    known, ids = lookup.known(batch)
    assert store.asked[1] == ("heads", {subscription_uuid("s1"), customer_uuid("c2"),
                                        subscription_uuid("s9"), rate_uuid("e4")})
    assert store.queries() == ["keys", "heads"]
    assert ids == {stream: aggregate_id(stream) for stream in ("s:s1", "c:c2", "s:s9", "r:e4")}
    assert places(decide(batch, known)) == [("e5", "s:s1", 3), ("e6", "c:c2", 2),
                                            ("e7", "s:s9", 1), ("v1", "r:e4", 2)]


def test_a_head_comes_from_the_batch_being_written_then_from_the_cache():
    """A cache of one head, to tell them apart: the batch being written moves s1 and c2,
    and the cache keeps c2's only."""
    store = stored(STORE)
    lookup = StoreLookup(store, cache_size=1)
    writing = expecting(lookup, [sub(1, "e5", "s1"),
                                 record(2, "e6", "customer.updated", customer="c2")])
    store.queries()
    # Decided while the first is being written (the store does not hold it yet): its
    # records are known, its streams stand where it left them; no head is read.
    second = [sub(1, "e5", "s1"), sub(2, "e7", "s1")]
    known, _ = lookup.known(second)
    decided = decide(second, known)
    assert [d.event_id for d in decided.duplicates] == ["e5"]
    assert places(decided) == [("e7", "s:s1", 4)]
    assert store.queries() == ["keys"]
    store.write(*writing)
    lookup.landed()
    # Landed: the store answers for its records, the cache for c2's head.
    third = [record(1, "e8", "customer.updated", customer="c2")]
    known, _ = lookup.known(third)
    assert places(decide(third, known)) == [("e8", "c:c2", 3)]
    assert store.queries() == ["keys"]


@pytest.mark.parametrize(("then", "head", "queries"), [
    ("landed", Head(3, "c1"), ["keys"]),  # the head the batch left, from the cache
    ("forget", Head(2, "c1"), ["keys", "heads"]),  # the store's (it did not land: refused)
])
def test_landed_drops_the_batch_being_written_and_forget_the_cache_too(then, head, queries):
    """The store is not given the batch here, to show who answers what."""
    lookup = StoreLookup(store := stored(STORE), cache_size=10)
    batch = [sub(1, "e5", "s1")]
    expecting(lookup, batch)
    getattr(lookup, then)()
    store.queries()
    known, _ = lookup.known(batch)
    assert known.recorded("e5") is None  # not the layer's any more: the store's to say
    assert known.head("s:s1") == head
    assert store.queries() == queries


def test_a_full_cache_drops_its_older_half():
    heads = Heads(4)
    heads.update({s: (aggregate_id(s), Head(1, "c1")) for s in ("s:a", "s:b", "s:c", "s:d")})
    heads.update({"s:e": (aggregate_id("s:e"), Head(1, "c1"))})
    assert list(heads) == ["s:c", "s:d", "s:e"]
    heads.update({s: (aggregate_id(s), Head(2, "c1")) for s in ("s:f", "s:g", "s:h", "s:i",
                                                                  "s:j")})
    assert list(heads) == ["s:g", "s:h", "s:i", "s:j"]  # more than it holds: the last ones


def test_a_head_no_longer_cached_is_a_query_never_a_wrong_answer():
    store = stored(STORE)
    lookup = StoreLookup(store, cache_size=1)
    store.write(*expecting(lookup, [sub(1, "e5", "s1"),
                                    record(2, "e6", "customer.updated", customer="c2")]))
    lookup.landed()
    store.queries()
    later = [sub(1, "e7", "s1"), record(2, "e8", "customer.updated", customer="c2")]
    known, _ = lookup.known(later)
    assert places(decide(later, known)) == [("e7", "s:s1", 4), ("e8", "c:c2", 3)]
    assert store.asked[1] == ("heads", {subscription_uuid("s1")})  # c2's is the cached one


# -- the property ----------------------------------------------------------------------------


@st.composite
def ledger_batches(draw: st.DrawFn) -> list[list[Checked]]:
    """Batches over a few streams whose ids are mostly new (streams grow, voids find
    their targets), at times repeated (duplicates, conflicts); voids name earlier events
    (voids among them, some voided already) or none the ledger holds."""
    ids: list[str] = []
    batches = []
    for _ in range(draw(st.integers(2, 6))):
        batch = []
        for line in range(1, draw(st.integers(1, 8)) + 1):
            repeat = ids and draw(st.integers(0, 4)) == 0
            event_id = draw(st.sampled_from(ids)) if repeat else f"e{len(ids) + 1}"
            ids.append(event_id)
            sha = draw(st.sampled_from(["h", "h", "h", "other"]))
            kind = draw(st.sampled_from(["customer", "subscription", "subscription", "void",
                                         "void", "rate"]))
            customer = draw(st.sampled_from(["c1", "c2", "c3"]))
            if kind == "void":
                target = draw(st.sampled_from([*ids[:-1], "missing"]))
                batch.append(record(line, event_id, VOID, sha=sha, voids=target))
            elif kind == "rate":
                batch.append(record(line, event_id, FX_RATE, sha=sha))
            elif kind == "customer":
                batch.append(record(line, event_id, "customer.updated", sha=sha,
                                    customer=customer))
            else:
                batch.append(record(line, event_id, "subscription.changed", sha=sha,
                                    customer=customer,
                                    sub=draw(st.sampled_from(["s1", "s2", "s3", "s4"]))))
        batches.append(batch)
    return batches


def copied(facts: Facts) -> Facts:
    return Facts(dict(facts.recordings), dict(facts.voids), dict(facts.heads))


def restore(facts: Facts, saved: Facts) -> None:
    """`facts` as `saved` was (in place: a `Facts` answers from its own dicts)."""
    for mine, theirs in ((facts.recordings, saved.recordings), (facts.voids, saved.voids),
                         (facts.heads, saved.heads)):
        mine.clear()
        mine.update(theirs)


@settings(max_examples=300)  # milliseconds each
@given(batches=ledger_batches(), data=st.data(), cache_size=st.integers(1, 6))
def test_deciding_on_the_store_lookup_is_deciding_on_the_same_facts_in_memory(
        batches, data, cache_size):
    """Each batch is decided as the pipeline does: while the one before is being written,
    which lands in the store before the look-up or after it. Or it is another writer's,
    recorded once the one being written has landed, or before it: that one is refused,
    then decided and written again at once. Either way this writer is told to `forget`."""
    store, ledger = FakeRecorder(), Facts()  # the same ledger, in the store and in memory
    lookup = StoreLookup(store, cache_size)
    writing: tuple[list[Checked], Decided, dict[str, UUID]] | None = None
    settled = Facts()  # the ledger in memory without the batch being written

    def decided_alike(batch: list[Checked]) -> tuple[Decided, dict[str, UUID]]:
        """`batch` decided on the look-up as on the ledger in memory (landed there)."""
        store.asked = []
        known, ids = lookup.known(batch)
        assert [kind for kind, _ in store.asked] in (["keys"], ["keys", "heads"])
        decided, expected = decide(batch, known), decide(batch, ledger)
        assert told(decided) == told(expected)
        assert ids == {stream: aggregate_id(stream) for stream in ids}
        assert set(decided.heads) <= set(ids)
        land(ledger, expected)
        return decided, ids

    def theirs(batch: list[Checked]) -> None:
        recorded = decide(batch, ledger)
        land(ledger, recorded)
        store.write(recorded, {stream: aggregate_id(stream) for stream in recorded.heads})
        lookup.forget()

    for batch in batches:
        whose = data.draw(st.sampled_from(["mine", "theirs", "theirs first"]))
        if whose == "theirs first" and writing is not None:
            restore(ledger, settled)
            theirs(batch)
            again = decided_alike(writing[0])
            store.write(*again)
            lookup.expect(*again)
            lookup.landed()
            writing = None
            continue
        if whose != "mine":
            if writing is not None:
                store.write(*writing[1:])
                lookup.landed()
                writing = None
            theirs(batch)
            continue
        landed_first = writing is not None and data.draw(st.booleans(), label="landed first")
        if landed_first:
            store.write(*writing[1:])
        saved = copied(ledger)
        decided, ids = decided_alike(batch)
        if writing is not None:
            if not landed_first:
                store.write(*writing[1:])
            lookup.landed()
        writing = None
        if decided.accepted:
            writing, settled = (batch, decided, ids), saved
            lookup.expect(decided, ids)
