"""The Stripe mapping: each event type and its canonical event, per API shape (pure); and
`revledger import stripe` through it (both stores)."""

from __future__ import annotations

from datetime import date

import orjson
import pytest
from click.testing import CliRunner

from cli import main
from ledger.events import InvalidEvent, parse_event
from ledger.sources.stripe import canonical_event
from services.metrics import mrr_report
from tests.stripe_events import DAY, T0, coupon, event, price, subscription


def mapped(stripe_event: dict) -> dict:
    canonical = canonical_event(stripe_event)
    assert canonical is not None
    parse_event(canonical)  # every mapped event is valid canonical input
    return {k: v for k, v in canonical.items() if k != "stripe_event"}


@pytest.mark.parametrize("new_api", [True, False])
def test_a_created_subscription_starts_at_its_start_date(new_api):
    e = event("evt_1", "customer.subscription.created",
              subscription(prices=[(price(cents=2900), 3)], new_api=new_api), T0 + 60)
    assert mapped(e) == {
        "event_id": "stripe:evt_1", "type": "subscription.started",
        "subscription_id": "sub_1", "customer_id": "cus_1",
        "effective_at": "2024-01-01T00:00:00.000000Z",
        "plan": "price_pro", "amount": "29.00", "currency": "USD", "interval": "month",
        "interval_count": 1, "quantity": 3,
    }


def test_the_stripe_event_is_kept_for_audit_less_its_delivery_counter():
    e = event("evt_1", "customer.subscription.created", subscription(), T0)
    kept = canonical_event(e)["stripe_event"]
    assert kept["id"] == "evt_1" and "pending_webhooks" not in kept


def test_a_yearly_price_keeps_its_interval():
    e = event("evt_1", "customer.subscription.created",
              subscription(prices=[(price("price_y", 120000, "year"), 1)]), T0)
    assert (mapped(e)["amount"], mapped(e)["interval"]) == ("1200.00", "year")


def test_several_items_sum_into_one_amount():
    e = event("evt_1", "customer.subscription.created", subscription(
        prices=[(price("price_a", 1000), 2), (price("price_b", 550), 1)]), T0)
    m = mapped(e)
    assert (m["plan"], m["amount"], m["quantity"]) == ("price_a+price_b", "25.50", 1)


def test_an_update_is_a_change_effective_when_stripe_created_the_event():
    e = event("evt_2", "customer.subscription.updated",
              subscription(prices=[(price(), 5)]), T0 + 10 * DAY, previous={"items": {}})
    m = mapped(e)
    assert (m["type"], m["quantity"], m["effective_at"]) == (
        "subscription.changed", 5, "2024-01-11T00:00:00.000000Z")


@pytest.mark.parametrize("new_api", [True, False])
def test_a_forever_percentage_discount_lowers_the_amount(new_api):
    e = event("evt_1", "customer.subscription.created", subscription(
        prices=[(price(cents=9999), 1)], discount=coupon(percent_off=15),
        new_api=new_api), T0)
    assert (mapped(e)["amount"], mapped(e)["quantity"]) == ("84.99", 1)  # 84.9915, half-even


def test_a_repeating_discount_counts_only_while_it_runs():
    running = coupon(amount_off=500, duration="repeating", end=T0 + 90 * DAY)
    sub = subscription(discount=running)
    assert mapped(event("e1", "customer.subscription.created", sub, T0))["amount"] == "24.00"
    later = event("e2", "customer.subscription.updated", sub, T0 + 100 * DAY)
    assert mapped(later)["amount"] == "29.00"
    once = subscription(discount=coupon(percent_off=50, duration="once"))
    assert mapped(event("e3", "customer.subscription.created", once, T0))["amount"] == "29.00"


def test_a_trial_counts_zero_until_it_converts():
    trial = event("evt_1", "customer.subscription.created", subscription(status="trialing"), T0)
    assert (mapped(trial)["type"], mapped(trial)["amount"]) == ("subscription.started", "0.00")
    converted = event("evt_2", "customer.subscription.updated", subscription(),
                      T0 + 14 * DAY, previous={"status": "trialing"})
    assert (mapped(converted)["type"], mapped(converted)["amount"]) == (
        "subscription.changed", "29.00")
    incomplete = event("evt_3", "customer.subscription.created",
                       subscription(status="incomplete"), T0)
    assert mapped(incomplete)["amount"] == "0.00"


def test_deleted_is_a_cancellation_at_ended_at():
    e = event("evt_9", "customer.subscription.deleted",
              subscription(status="canceled", ended_at=T0 + 40 * DAY), T0 + 41 * DAY)
    assert {k: mapped(e)[k] for k in ("type", "effective_at")} == {
        "type": "subscription.cancelled", "effective_at": "2024-02-10T00:00:00.000000Z"}


def test_paused_is_cancelled_until_resumed():
    paused = event("evt_p", "customer.subscription.paused", subscription(status="paused"),
                   T0 + 5 * DAY)
    assert mapped(paused)["type"] == "subscription.cancelled"
    resumed = event("evt_r", "customer.subscription.resumed", subscription(), T0 + 9 * DAY)
    assert (mapped(resumed)["type"], mapped(resumed)["amount"]) == (
        "subscription.reactivated", "29.00")
    via_update = event("evt_u", "customer.subscription.updated", subscription(),
                       T0 + 9 * DAY, previous={"status": "paused"})
    assert mapped(via_update)["type"] == "subscription.reactivated"


def test_customers_carry_their_metadata_as_attributes():
    customer = {"id": "cus_1", "object": "customer", "created": T0,
                "metadata": {"region": "EU", "tier": "smb"}}
    assert mapped(event("evt_c", "customer.created", customer, T0 + 5)) == {
        "event_id": "stripe:evt_c", "type": "customer.created", "customer_id": "cus_1",
        "effective_at": "2024-01-01T00:00:00.000000Z",
        "attributes": {"region": "EU", "tier": "smb"}}
    updated = mapped(event("evt_d", "customer.updated", customer, T0 + DAY))
    assert (updated["type"], updated["effective_at"]) == (
        "customer.updated", "2024-01-02T00:00:00.000000Z")


def test_zero_decimal_currencies_are_whole_units():
    e = event("evt_1", "customer.subscription.created",
              subscription(prices=[(price(cents=1000, currency="jpy"), 1)]), T0)
    assert (mapped(e)["amount"], mapped(e)["currency"]) == ("1000.00", "JPY")


def test_a_legacy_plan_item_maps_like_a_price():
    sub = subscription(new_api=False)
    item = sub["items"]["data"][0]
    item["plan"] = {"id": "plan_old", "currency": "usd", "amount": 4900, "interval": "month",
                    "interval_count": 1}
    del item["price"]
    assert mapped(event("e", "customer.subscription.created", sub, T0))["amount"] == "49.00"


def test_other_event_types_are_not_mapped():
    assert canonical_event(event("evt_x", "invoice.paid", {"id": "in_1"}, T0)) is None


def test_an_unreadable_object_is_an_invalid_event_naming_the_stripe_event():
    broken = event("evt_b", "customer.subscription.created", {"id": "sub_1"}, T0)
    with pytest.raises(InvalidEvent) as caught:
        canonical_event(broken)
    assert caught.value.event_id == "stripe:evt_b"
    assert caught.value.reason == "customer.subscription.created: no 'customer' in the object"


# -- import stripe: the same mapping through ingest, on both stores --------------------------

def run_import(db_url: str, body: bytes) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    return result.exit_code, result.stderr


def test_import_stripe_reads_an_array_and_is_idempotent(db_url):
    events = [
        event("evt_1", "customer.subscription.created", subscription(), T0),
        event("evt_2", "customer.subscription.updated", subscription(prices=[(price(), 2)]),
              T0 + 10 * DAY),
        event("evt_3", "invoice.paid", {"id": "in_1"}, T0),
    ]
    code, stderr = run_import(db_url, orjson.dumps(events))
    assert code == 0, stderr
    assert stderr.startswith("accepted 2, duplicates 0, rejected 0, ignored 1 in ")
    code, stderr = run_import(db_url, b"\n".join(orjson.dumps(e) for e in events))
    assert stderr.startswith("accepted 0, duplicates 2, rejected 0, ignored 1 in ")
    assert mrr_report(db_url, date(2024, 1, 31))["mrr"] == "58.00"


def test_import_stripe_reports_bad_events_and_keeps_good_ones(db_url):
    lines = [
        orjson.dumps(event("evt_1", "customer.subscription.created", subscription(), T0)),
        b"{not json",
        orjson.dumps(event("evt_b", "customer.subscription.created", {"id": "sub_9"}, T0)),
    ]
    code, stderr = run_import(db_url, b"\n".join(lines))
    assert code == 1
    assert stderr.splitlines()[:2] == [
        "line 2: -: invalid JSON",
        "line 3: stripe:evt_b: customer.subscription.created: no 'customer' in the object",
    ]
    assert "accepted 1, duplicates 0, rejected 2 in " in stderr
