"""Stripe's MRR, as Stripe defines it, from payloads in the shapes Stripe sends (pure).

Every expected figure is worked by hand from Stripe's definition (docs/integrations.md
cites the documents): `active` and `past_due` count, other statuses do not; metered prices,
tax and finite coupons are not MRR; a forever coupon is. The figures are read from the
canonical events through the independent reference fold (projections/reference/),
never from the mapping's own arithmetic.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from ledger.events import parse_event
from ledger.sources.stripe import canonical_event
from ledger.sources.stripe_source import map_record
from ledger.sources.stripe_terms import Policy
from projections.reference import Event, Reference
from tests.stripe_fixtures import (
    DAY,
    LATEST,
    T0,
    VERSIONS,
    coupon,
    discount,
    event,
    item,
    price,
    subscription,
    tax_rate,
)

JAN31 = date(2024, 1, 31)


STRIPE = Policy()  # Stripe's own choices


def mapped(stripe_event: dict, lookup=lambda _: None, policy: Policy = STRIPE) -> dict:
    canonical = canonical_event(stripe_event, lookup, policy)
    assert canonical is not None
    parse_event(canonical)  # every mapped event is valid canonical input
    return {k: v for k, v in canonical.items() if k != "stripe_event"}


def mrr(*canonical: dict, day: date = JAN31) -> Fraction:
    """MRR at the end of `day` of these canonical events, by the reference fold."""
    return Reference(Event(i, "2024-01-01T00:00:00.000000Z", c)
                     for i, c in enumerate(canonical, 1)).mrr(day)[0]


def created(version: str, sub: dict, at: int = T0, evt: str = "evt_c") -> dict:
    return event(version, evt, "customer.subscription.created", sub, at)


def updated(version: str, sub: dict, at: int, evt: str = "evt_u", previous=None) -> dict:
    return event(version, evt, "customer.subscription.updated", sub, at, previous or {})


# -- every API version: a webhook is the subscription's whole state ---------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_each_version_maps_to_a_snapshot_of_the_whole_state(version):
    sub = subscription(version, items=[item(version, price(version, cents=2900), 3)])
    m = mapped(created(version, sub, T0 + 60))
    # start_date, then the lifecycle's rank (0: created) and a digest of the event id
    assert m.pop("effective_at").startswith("2024-01-01T00:00:00.0")
    assert m == {
        "event_id": "stripe:evt_c", "type": "subscription.snapshot", "status": "active",
        "subscription_id": "sub_1", "customer_id": "cus_1",
        "plan": "price_pro", "amount": "29", "currency": "USD", "interval": "month",
        "interval_count": 1, "quantity": 3,
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_an_update_for_a_subscription_never_seen_counts_on_its_own(version):
    sub = subscription(version, items=[item(version, price(version, cents=4500), 1)])
    assert mrr(mapped(updated(version, sub, T0 + 5 * DAY))) == 45


def test_created_and_updated_in_one_second_follow_stripe_lifecycle_in_any_order():
    trial = subscription(status="trialing", items=[item(LATEST, price(cents=4500))])
    paying = subscription(items=[item(LATEST, price(cents=4500))])
    first = mapped(created(LATEST, trial, T0))
    second = mapped(updated(LATEST, paying, T0))  # the same second
    assert first["effective_at"] < second["effective_at"]
    assert mrr(second, first) == mrr(first, second) == 45


def test_deleted_is_inactive_from_ended_at():
    ended = subscription(status="canceled", ended_at=T0 + 10 * DAY, canceled_at=T0 + 9 * DAY)
    deleted = mapped(event(LATEST, "evt_d", "customer.subscription.deleted", ended,
                           T0 + 11 * DAY))
    assert (deleted["status"], deleted["effective_at"][:10]) == ("inactive", "2024-01-11")
    assert mrr(mapped(created(LATEST, subscription())), deleted) == 0


# -- Stripe's MRR definition ------------------------------------------------------------

@pytest.mark.parametrize("status,counts", [
    ("active", True), ("past_due", True), ("trialing", False), ("incomplete", False),
    ("incomplete_expired", False), ("canceled", False), ("unpaid", False), ("paused", False),
])
@pytest.mark.parametrize("version", [VERSIONS[1], LATEST])
def test_only_active_and_past_due_count(version, status, counts):
    sub = subscription(version, status=status)
    assert mrr(mapped(updated(version, sub, T0))) == (29 if counts else 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_metered_prices_are_not_mrr(version):
    seats = item(version, price(version, "price_seat", 5000), 1)
    usage = item(version, price(version, "price_api", 7, usage_type="metered"), None)
    assert mrr(mapped(created(version, subscription(version, items=[seats, usage])))) == 50


@pytest.mark.parametrize("version", VERSIONS[1:])  # tax rates came after 2018-02-28
def test_tax_included_in_a_price_at_a_rate_in_the_payload_is_not_mrr(version):
    vat = tax_rate(version, 19, inclusive=True)
    inclusive = subscription(version, items=[
        item(version, price(version, cents=11900, tax_behavior="inclusive"), 1,
             tax_rates=[vat])])
    assert mrr(mapped(created(version, inclusive))) == 100  # 119 / 1.19
    by_default = subscription(version, default_tax_rates=[vat], items=[
        item(version, price(version, cents=11900, tax_behavior="inclusive"), 2)])
    assert mrr(mapped(created(version, by_default))) == 200
    exclusive = subscription(version, items=[item(version, price(version, cents=10000), 1,
                                                  tax_rates=[tax_rate(version, 19, False)])])
    assert mrr(mapped(created(version, exclusive))) == 100  # tax on top: not revenue


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rounding,expected", [("up", 30), ("down", 20)])
def test_transform_quantity_bills_per_package(version, rounding, expected):
    """$10 per 5 users at 12 users: 3 packages rounded up, 2 rounded down."""
    per_five = price(version, cents=1000, transform={"divide_by": 5, "round": rounding})
    sub = subscription(version, items=[item(version, per_five, 12)])
    assert mrr(mapped(created(version, sub))) == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_quantity_zero_is_zero_not_one(version):
    m = mapped(created(version, subscription(version, items=[item(version, price(version),
                                                                  0)])))
    assert (m["quantity"], mrr(m)) == (0, 0)


@pytest.mark.parametrize("version", VERSIONS[1:])
def test_a_sub_cent_unit_price_is_multiplied_before_rounding(version):
    """0.123456789 USD a unit (12.3456789 cents) x 100,000 = 12,345.6789 exactly."""
    p = price(version, cents=None, decimal="12.3456789")
    m = mapped(created(version, subscription(version, items=[item(version, p, 100_000)])))
    assert mrr(m) == Fraction("12345.6789")


@pytest.mark.parametrize("version", VERSIONS[1:])
def test_a_unit_price_finer_than_twelve_decimals_is_rounded_once_after_the_quantity(version):
    """1/3 cent of a cent (0.333333333333 cents = 0.00333333333333 USD, 14 places) a unit,
    7 units: 0.02333333333331 USD, rounded once to 12 places: 0.023333333333 (rounding
    the unit first would give 7 x 0.003333333333 = 0.023333333331)."""
    p = price(version, cents=None, decimal="0.333333333333")
    m = mapped(created(version, subscription(version, items=[item(version, p, 7)])))
    assert mrr(m) == Fraction("0.023333333333")


TIERS = [{"up_to": 5, "unit_amount": 1000, "unit_amount_decimal": "1000", "flat_amount": None,
          "flat_amount_decimal": None},
         {"up_to": 10, "unit_amount": 800, "unit_amount_decimal": "800", "flat_amount": None,
          "flat_amount_decimal": None},
         {"up_to": None, "unit_amount": 500, "unit_amount_decimal": "500",
          "flat_amount": 2000, "flat_amount_decimal": "2000"}]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mode,expected", [
    ("graduated", 5 * 10 + 5 * 8 + 2 * 5 + 20),  # each unit at its tier, +flat of tier 3
    ("volume", 12 * 5 + 20),  # every unit at the tier 12 falls in, + its flat
])
def test_tiered_prices_are_computed_from_their_tiers(version, mode, expected):
    tiered = price(version, cents=None, tiers=TIERS, tiers_mode=mode)
    m = mapped(created(version, subscription(version, items=[item(version, tiered, 12)])))
    assert mrr(m) == expected


def test_tiers_left_out_of_a_webhook_are_looked_up_or_held():
    tiered = price(cents=None, tiers=TIERS, tiers_mode="volume")
    webhook_price = {k: v for k, v in tiered.items() if k != "tiers"}
    sub = subscription(items=[item(LATEST, webhook_price, 12)])
    held = map_record(created(LATEST, sub), lambda _: None, Policy())
    assert held.held is not None and "needs price price_pro" in held.held[1]
    known = {"price_pro": tiered}
    assert mrr(mapped(created(LATEST, sub), known.get)) == 80


def test_mixed_intervals_sum_each_items_monthly_value():
    """$120 a year + $15 a month = 10 + 15 = 25 a month; $10 a week + $15 a month =
    520/12 + 15 = 175/3 a month (Stripe allows mixed intervals since 2025-07-30.basil)."""
    yearly = item(LATEST, price(LATEST, "price_y", 12000, interval="year"))
    monthly = item(LATEST, price(LATEST, "price_m", 1500))
    weekly = item(LATEST, price(LATEST, "price_w", 1000, interval="week"))
    assert mrr(mapped(created(LATEST, subscription(items=[yearly, monthly])))) == 25
    assert mrr(mapped(created(LATEST, subscription(items=[weekly, monthly])))) == \
        Fraction(175, 3)
    quarterly = item(LATEST, price(LATEST, "price_q", 3000, count=3))
    assert mrr(mapped(created(LATEST, subscription(items=[quarterly, yearly])))) == 20


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("duration,months,expected,with_repeating", [
    ("forever", None, 80, 80), ("once", None, 100, 100), ("repeating", 3, 100, 80),
])
def test_forever_coupons_reduce_mrr_finite_ones_do_not_by_default(
        version, duration, months, expected, with_repeating):
    c = coupon(version, percent_off=20, duration=duration, months=months)
    d = discount(version, "di_1", c, end=None if duration == "forever" else T0 + 90 * DAY)
    sub = subscription(version, items=[item(version, price(version, cents=10000))],
                       discounts=[d])
    known = {"di_1": d, c["id"]: c}
    assert mrr(mapped(created(version, sub), known.get)) == expected
    counted = Policy(repeating_coupons=True)
    assert mrr(mapped(created(version, sub), known.get, counted)) == with_repeating


def test_an_amount_off_coupon_is_in_major_units():
    c = coupon(amount_off=500)
    d = discount(LATEST, "di_5", c)
    sub = subscription(items=[item(LATEST, price(cents=2900), 2)], discounts=[d])
    assert mrr(mapped(created(LATEST, sub), {"di_5": d, c["id"]: c}.get)) == 53


@pytest.mark.parametrize("version", VERSIONS)
def test_a_scheduled_cancellation_stops_counting_when_scheduled_by_default(version):
    scheduled = subscription(version, cancel_at_period_end=True, canceled_at=T0 + 3 * DAY)
    m = mapped(updated(version, scheduled, T0 + 3 * DAY))
    assert (m["status"], mrr(m)) == ("inactive", 0)
    at_end = mapped(updated(version, scheduled, T0 + 3 * DAY),
                    policy=Policy(cancel_when_scheduled=False))
    assert mrr(at_end) == 29


# -- discounts named by id (2025-03-31.basil on) are learned, never guessed --------------

@pytest.mark.parametrize("version", VERSIONS[2:])
def test_a_discount_named_by_id_is_held_until_it_is_known(version):
    c = coupon(version, percent_off=20)
    d = discount(version, "di_1", c)
    sub = subscription(version, items=[item(version, price(version, cents=10000))],
                       discounts=[d])
    if version != "2025-02-24.acacia":  # acacia still expands the singular `discount`
        waiting = map_record(created(version, sub), lambda _: None, Policy())
        assert waiting.held is not None and "needs discount di_1" in waiting.held[1]
    learned = map_record(event(version, "evt_dc", "customer.discount.created", d, T0),
                         lambda _: None, Policy())
    assert learned.ignored and dict(learned.learned)["di_1"]["id"] == "di_1"
    known = dict(learned.learned)
    if version == LATEST:  # the coupon is an id: its own event brings it
        missing = map_record(created(version, sub), known.get, Policy())
        assert missing.held is not None and "needs coupon co_20" in missing.held[1]
        known |= dict(map_record(event(version, "evt_co", "coupon.created", c, T0),
                                 known.get, Policy()).learned)
    assert mrr(mapped(created(version, sub), known.get)) == 80


def test_an_unknown_shape_is_held_with_its_reason():
    broken = event(LATEST, "evt_b", "customer.subscription.updated", {"id": "sub_9"}, T0)
    held = map_record(broken, lambda _: None, Policy())
    assert held.held == ("stripe:evt_b",
                         "customer.subscription.updated: no 'customer' in the object")


def test_a_status_stripe_does_not_document_is_held_not_read_as_inactive():
    sub = subscription(LATEST, status="some_future_status")
    held = map_record(updated(LATEST, sub, T0), lambda _: None, Policy())
    assert held.held[1] == ("customer.subscription.updated: unreadable object (status "
                            "'some_future_status' is none of those Stripe documents)")


def test_other_event_types_are_not_mapped():
    invoice = event(LATEST, "evt_i", "invoice.paid", {"id": "in_1", "object": "invoice"}, T0)
    assert canonical_event(invoice) is None


def test_customers_carry_their_metadata_as_attributes():
    customer = {"id": "cus_1", "object": "customer", "created": T0,
                "metadata": {"region": "EU"}}
    assert mapped(event(LATEST, "evt_k", "customer.created", customer, T0 + 5)) == {
        "event_id": "stripe:evt_k", "type": "customer.created", "customer_id": "cus_1",
        "effective_at": "2024-01-01T00:00:00.000000Z", "attributes": {"region": "EU"}}


def test_zero_decimal_currencies_are_whole_units():
    sub = subscription(items=[item(LATEST, price(cents=1000, currency="jpy"))])
    m = mapped(created(LATEST, sub))
    assert (m["amount"], m["currency"]) == ("1000", "JPY")


def test_an_items_own_discount_and_a_coupon_for_some_products_apply_to_those_items():
    """$100 (prod_a) + $50 (prod_b): 10% off prod_a's item alone, then $30 off the
    subscription for prod_b only: 90 + 50 - 30 = 110."""
    ten = coupon(LATEST, "co_10", percent_off=10)
    on_item = discount(LATEST, "di_item", ten)
    thirty = coupon(LATEST, "co_30", amount_off=3000)
    thirty["applies_to"] = {"products": ["prod_b"]}
    on_sub = discount(LATEST, "di_sub", thirty)
    a = item(LATEST, price(LATEST, "price_a", 10000, product="prod_a"),
             discounts=["di_item"])
    b = item(LATEST, price(LATEST, "price_b", 5000, product="prod_b"))
    sub = subscription(items=[a, b], discounts=[on_sub])
    known = {"di_item": on_item, "co_10": ten, "di_sub": on_sub, "co_30": thirty}
    assert mrr(mapped(created(LATEST, sub), known.get)) == 110


def test_a_subscription_whose_items_are_cut_short_is_held_not_undercounted():
    sub = subscription()
    sub["items"]["has_more"] = True
    held = map_record(updated(LATEST, sub, T0), lambda _: None, Policy())
    assert held.held is not None and "has_more" in held.held[1]
