"""The billing sources' one interface (ledger.sources), without HTTP: every registered
source keeps it, and a delivery goes through the service as the HTTP server sends it."""

from __future__ import annotations

import time

import orjson
import pytest

from ledger.feed import Rejected
from ledger.sources import (
    SOURCES,
    Delivery,
    Ignored,
    RefusedDelivery,
    SignatureError,
    source_named,
)
from ledger.sources.stripe_source import sign
from services.events import list_events
from services.ingest import Delivered, LedgerWriter
from tests.feeds import jsonl, started
from tests.stripe_fixtures import LATEST, T0, event, subscription

SECRET = "whsec_test"
CREATED = event(LATEST, "evt_1", "customer.subscription.created", subscription(), T0)
INVOICE = event(LATEST, "evt_i", "invoice.paid", {"id": "in_1", "object": "invoice"}, T0)
E1 = started("e1", "s1", "c1", "2024-01-01T00:00:00Z")


def signed(stripe_event: dict) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(stripe_event)
    return body, {"Stripe-Signature": sign(body, SECRET, int(time.time()))}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_source_is_registered_under_its_own_name(name):
    assert source_named(name).name == name


def test_an_unknown_source_is_named_in_the_error():
    with pytest.raises(ValueError, match="'paddle'"):
        source_named("paddle")


def test_a_canonical_delivery_is_one_object_however_laid_out_or_json_lines():
    canonical = source_named("canonical")
    indented = orjson.dumps(E1, option=orjson.OPT_INDENT_2)
    assert canonical.delivery(indented, {}) == Delivery([indented])
    assert canonical.delivery(jsonl(E1, E1), {}).lines == jsonl(E1, E1).splitlines()


def test_a_stripe_export_numbers_lines_rejections_and_ignored_events():
    data = [orjson.dumps(CREATED) + b"\n", b"{not json\n",
            orjson.dumps(INVOICE) + b"\n"]
    items = list(source_named("stripe").parse(data))
    assert items[0][0] == 1
    assert orjson.loads(items[0][1])["event_id"] == "stripe:evt_1"
    assert isinstance(items[1], Rejected)
    assert str(items[1]) == "line 2: -: invalid JSON (unexpected character, expected a string key)"
    assert items[2] == Ignored(3)


def test_a_stripe_delivery_is_verified_then_kept_with_its_evidence():
    body, headers = signed(CREATED)
    delivery = source_named("stripe", SECRET).delivery(body, headers)
    (line,) = delivery.lines
    assert orjson.loads(line)["_delivery"] == {"raw_body": body.decode(),
                                               "stripe_signature": headers["Stripe-Signature"]}
    unmapped = signed(INVOICE)
    assert source_named("stripe", SECRET).delivery(*unmapped) == Delivery([], ignored=True)


def test_a_stripe_delivery_without_a_secret_or_signature_is_refused():
    body, headers = signed(CREATED)
    with pytest.raises(SignatureError):
        source_named("stripe").delivery(body, headers)
    with pytest.raises(SignatureError, match="missing"):
        source_named("stripe", SECRET).delivery(body, {})


def test_a_secret_for_a_source_that_does_not_sign_is_a_mistake():
    with pytest.raises(TypeError):
        source_named("canonical", SECRET)


def test_the_writer_delivers_from_any_source(sqlite_url):
    writer = LedgerWriter(sqlite_url, secrets={"stripe": SECRET})
    try:
        assert writer.deliver("canonical", jsonl(E1), {}).outcomes[0].status == "accepted"
        delivered = writer.deliver("stripe", *signed(CREATED))
        assert [o.event_id for o in delivered.outcomes] == ["stripe:evt_1"]
        with pytest.raises(RefusedDelivery, match="invalid JSON"):
            body = b"{not json"
            writer.deliver("stripe", body, {"stripe-signature": sign(body, SECRET,
                                                                      int(time.time()))})
        invoice = signed(INVOICE)
        assert writer.deliver("stripe", *invoice) == Delivered([], ignored=True)
    finally:
        writer.close()
    assert [e["event_id"] for e in list_events(sqlite_url)] == ["e1", "stripe:evt_1"]
