"""What sources deliver besides events (ledger/held.py), on both stores: learned objects
keep their first copy, a record is held once, a retried one leaves the list by a row of
its own (nothing is edited), settings once recorded stay."""

from __future__ import annotations

import pytest

from ledger.application import LedgerApplication
from ledger.held import SourceStore, recorded_settings


@pytest.fixture
def store(db_url):
    app = LedgerApplication(db_url)
    try:
        yield SourceStore(app)
    finally:
        app.close()


def test_learned_objects_keep_their_first_copy(store):
    assert store.learn("stripe", [("di_1", {"id": "di_1", "end": None})]) == 1
    assert store.learn("stripe", [("di_1", {"id": "di_1", "end": 5}), ("co_1", {})]) == 1
    assert store.objects("stripe") == {"di_1": {"id": "di_1", "end": None}, "co_1": {}}
    assert store.objects("stripe", ["co_1", "nope"]) == {"co_1": {}}
    assert store.objects("other") == {}


def test_a_record_is_held_once_and_leaves_the_list_when_done(store):
    raw = b'{"id": "evt_1", "object": "event"}'
    evidence = {"raw_body": raw.decode(), "stripe_signature": "t=1,v1=ab"}
    store.hold("stripe", [("stripe:evt_1", "needs discount di_1", raw, evidence)])
    store.hold("stripe", [("stripe:evt_1", "again", raw, None),  # the same event: once
                          ("-", "not a JSON object", b"[1]", None),
                          ("-", "not a JSON object", b"[1]", None)])  # the same bytes: once
    held = store.held("stripe")
    assert [(h.event_id, h.reason, h.raw, h.evidence) for h in held] == [
        ("stripe:evt_1", "needs discount di_1", raw, evidence),
        ("-", "not a JSON object", b"[1]", None)]
    store.done([(held[0].id, "accepted")])
    assert [h.event_id for h in store.held()] == ["-"]


def test_settings_once_recorded_stay(store):
    assert recorded_settings(store.app) == {}
    store.settle("stripe", {"repeating_coupons": "count"})
    assert store.settle("stripe", {"repeating_coupons": "count",
                                   "scheduled_cancellation": "when_ended"}) == {
        "repeating_coupons": "count", "scheduled_cancellation": "when_ended"}
    with pytest.raises(ValueError, match="already 'count'"):
        store.settle("stripe", {"repeating_coupons": "ignore"})
    assert recorded_settings(store.app) == {"stripe": {
        "repeating_coupons": "count", "scheduled_cancellation": "when_ended"}}
