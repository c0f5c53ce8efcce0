"""The fold and the metric arithmetic, rule by rule, with no database (contract worked
examples). Amounts are cents inside; the examples state them in currency units."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import numpy as np
import pytest

from projections import movements, nrr
from projections.engine import MRRIndex
from projections.fold import by_customer, mrr_before
from projections.mrr import amount_to_cents
from projections.nrr import retention
from projections.periods import end_of, parse_period
from projections.versions import fold_versions
from projections.view import customer_rows, table_rows
from tests.feeds import Feed, at


def mrr(feed: Feed, day: str, customer: str = "c1", known_at: str | None = None) -> Fraction:
    steps = feed.history(customer, known_at).steps.get("USD", [])
    return mrr_before(steps, end_of(date.fromisoformat(day)))


@pytest.mark.parametrize(
    ("amount", "interval", "count", "quantity", "monthly"),
    [
        ("100.00", "month", 1, 1, Fraction(100)),
        ("1200.00", "year", 1, 1, Fraction(100)),  # annual: / 12
        ("10.00", "week", 1, 1, Fraction(130, 3)),  # weekly: x 52/12 = 43.33...
        ("1.00", "day", 1, 1, Fraction(365, 12)),  # daily: x 365/12 = 30.4166...
        ("300.00", "month", 3, 1, Fraction(100)),  # quarterly: / interval_count
        ("10.00", "month", 1, 5, Fraction(50)),  # 5 seats
        ("99.99", "year", 2, 3, Fraction(9999 * 3, 100 * 12 * 2)),
    ],
)
def test_mrr_normalises_every_interval_exactly(amount, interval, count, quantity, monthly):
    feed = Feed()
    feed.start("2024-01-10", amount, interval=interval, interval_count=count, quantity=quantity)
    assert mrr(feed, "2024-01-10") * Fraction(1, 100) == monthly
    assert mrr(feed, "2024-01-09") == 0


def test_a_date_means_its_end_in_utc():
    feed = Feed()
    feed.add("subscription.started", None, amount="50.00", currency="USD", plan="p",
             interval="month")
    feed.facts[-1] = feed.facts[-1]._replace(effective_at="2024-03-31T23:59:59.999999Z")
    assert mrr(feed, "2024-03-31") == 5000
    feed2 = Feed()
    feed2.start("2024-04-01")  # exactly at the next midnight: not yet
    assert mrr(feed2, "2024-03-31") == 0


def test_changes_set_only_the_fields_they_name_and_cancel_clears_active():
    feed = Feed()
    feed.start("2024-01-01", "100.00", quantity=2)
    feed.add("subscription.changed", "2024-02-01", quantity=3)
    feed.add("subscription.changed", "2024-03-01", amount="120.00")
    feed.add("subscription.cancelled", "2024-04-01")
    assert [mrr(feed, d) for d in ("2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30")] == [
        20000, 30000, 36000, 0]


def test_a_null_term_in_a_stored_change_names_nothing():
    """Ingest refuses nulls now; a ledger that stored one still folds (as if left out)."""
    feed = Feed()
    feed.start("2024-01-01", "100.00", quantity=2)
    feed.add("subscription.changed", "2024-02-01", quantity=None, amount=None,
             interval_count=None, plan="q")
    assert mrr(feed, "2024-02-29") == 20000


def test_a_change_to_a_cancelled_subscription_keeps_it_inactive():
    feed = Feed()
    feed.start("2024-01-01")
    feed.add("subscription.cancelled", "2024-02-01")
    feed.add("subscription.changed", "2024-03-01", amount="500.00")
    assert mrr(feed, "2024-03-31") == 0


def test_a_trial_at_amount_zero_is_not_paying_until_converted():
    feed = Feed()
    feed.start("2024-01-01", "0.00")
    feed.add("subscription.changed", "2024-01-15", amount="49.00")
    history = feed.history()
    assert mrr(feed, "2024-01-14") == 0
    assert history.first_paid == at("2024-01-15")
    assert feed.reference().mrr(date(2024, 1, 14)) == (0, 0)


def test_a_backdated_event_rewrites_the_past_not_only_the_tail():
    feed = Feed()
    feed.start("2024-01-01", "100.00")
    feed.add("subscription.changed", "2024-05-01", amount="150.00")
    feed.add("subscription.changed", "2024-03-01", quantity=2)  # arrives last, effective earlier
    assert [mrr(feed, d) for d in ("2024-02-29", "2024-03-31", "2024-05-31")] == [
        10000, 20000, 30000]


def test_ties_in_effective_time_follow_recorded_order():
    feed = Feed()
    feed.start("2024-01-01", "100.00")
    feed.add("subscription.changed", "2024-02-01", amount="80.00")
    feed.add("subscription.changed", "2024-02-01", amount="90.00")
    assert mrr(feed, "2024-02-01") == 9000


def test_a_voided_event_stops_counting_from_when_the_void_was_recorded():
    feed = Feed()
    feed.start("2024-01-01", "100.00", recorded="2024-01-01")
    wrong = feed.add("subscription.cancelled", "2024-02-01", recorded="2024-02-02")
    feed.add("event.voided", None, customer=None, sub=None, recorded="2024-02-10", voids=wrong)
    assert mrr(feed, "2024-03-31") == 10000  # the cancellation no longer counts
    assert mrr(feed, "2024-03-31", known_at=at("2024-02-05")) == 0  # before the void
    assert mrr(feed, "2024-03-31", known_at=at("2024-01-15")) == 10000  # before the cancel


def test_customer_mrr_sums_its_subscriptions_and_attributes_merge():
    feed = Feed()
    feed.add("customer.created", "2023-12-01", sub=None, attributes={"region": "EU"})
    feed.start("2024-01-01", "100.00")
    feed.start("2024-01-05", "30.00", sub="s2")
    feed.add("customer.updated", "2024-02-01", sub=None, attributes={"tier": "smb"})
    history = feed.history()
    assert mrr(feed, "2024-01-31") == 13000
    assert history.attributes[-1] == (at("2024-02-01"), {"region": "EU", "tier": "smb"})


def two_customers() -> Feed:
    feed = Feed()
    feed.add("customer.created", "2023-01-01", "a", None, attributes={"region": "EU"})
    feed.add("customer.created", "2023-01-01", "b", None, attributes={"region": "NA"})
    feed.add("customer.updated", "2024-06-01", "b", None, attributes={"region": "EU"})
    feed.start("2023-03-10", "100.00", customer="a", sub="sa")
    feed.start("2023-07-01", "50.00", customer="b", sub="sb")
    feed.add("subscription.changed", "2024-03-01", customer="a", sub="sa", amount="130.00")
    feed.add("subscription.cancelled", "2024-02-01", customer="b", sub="sb")
    return feed


def engine_of(feed: Feed) -> MRRIndex:
    """The query engine over the fold's current rows, as the projection would store them."""
    rows = [customer_rows(c, fold_versions(fs)) for c, fs in by_customer(feed.facts).items()]
    steps, attributes, customers = table_rows(rows)
    return MRRIndex.from_rows([r[:1] + r[3:] for r in customers],
                              [(r[0], r[1], r[2], r[5]) for r in steps],
                              [(r[0], r[1], r[4]) for r in attributes])


START, END = date(2023, 12, 31), date(2024, 12, 31)


def test_nrr_worked_example_with_expansion_and_churn():
    r = two_customers().reference().nrr(START, END)
    assert (r["customers"], r["starting_mrr"], r["ending_mrr"]) == (2, 150, 130)
    assert (r["expansion"], r["contraction"], r["churn"]) == (30, 0, 50)
    assert (r["nrr"], r["grr"]) == (Fraction(13, 15), Fraction(2, 3))
    e = engine_of(two_customers()).nrr(end_of(START), end_of(END))
    assert (e.customers, e.starting_mrr, e.ending_mrr) == (2, 15000, 13000)  # cents
    assert (e.expansion, e.contraction, e.churn) == (3000, 0, 5000)


def test_cohort_is_the_vintage_of_the_first_paid_instant():
    ref, engine = two_customers().reference(), engine_of(two_customers())
    for cohort, customers, starting in (("2023-Q1", 1, 100), ("2023-07", 1, 50),
                                        ("2022", 0, 0)):
        assert (ref.nrr(START, END, cohort)["customers"],
                ref.nrr(START, END, cohort)["starting_mrr"]) == (customers, starting)
        r = engine.nrr(end_of(START), end_of(END), parse_period(cohort))
        assert (r.customers, r.starting_mrr) == (customers, starting * 100)


def test_segment_is_read_at_the_start_date():
    r = two_customers().reference().nrr(START, END, segment={"region": "EU"})
    assert r["customers"] == 1  # b moved to EU only in June 2024
    assert r["starting_mrr"] == 100
    e = engine_of(two_customers()).nrr(end_of(START), end_of(END), segment={"region": "EU"})
    assert (e.customers, e.starting_mrr) == (1, 10000)


def test_movements_tell_reactivation_from_new_by_month_end_snapshots():
    feed = Feed()
    feed.start("2024-01-10", "100.00", customer="a", sub="sa")
    feed.add("subscription.cancelled", "2024-02-10", customer="a", sub="sa")
    feed.add("subscription.reactivated", "2024-04-02", customer="a", sub="sa", amount="80.00",
             currency="USD", plan="p", interval="month")
    feed.start("2024-03-03", "0.00", customer="b", sub="sb")  # a trial: not paying
    feed.add("subscription.changed", "2024-04-20", customer="b", sub="sb", amount="20.00")
    months = {m["month"]: m for m in feed.reference().movements("2024-01", "2024-04")}
    assert months["2024-01"]["new"] == 100
    assert months["2024-02"]["churn"] == 100
    assert (months["2024-04"]["reactivation"], months["2024-04"]["new"]) == (80, 20)
    engine = {m.month: m for m in engine_of(feed).movements(date(2024, 1, 1), date(2024, 4, 1))}
    assert (engine["2024-04"].reactivation, engine["2024-04"].new) == (8000, 2000)


def test_endpoint_nrr_arithmetic_identity_and_zero_start():
    r = retention([(Fraction(100), Fraction(0)), (Fraction(50), Fraction(80)),
                   (Fraction(30), Fraction(10))])
    assert r.starting_mrr + r.expansion - r.contraction - r.churn == r.ending_mrr
    assert retention([]).nrr is None and retention([]).grr is None


# (p, q, paid before) -> each kind's amount, worked by hand: a customer paying at the
# previous month end moves as a retained one; one starting to pay is new or reactivated.
MOVES = [
    ((0, 50, False), {"new": 50}),
    ((0, 50, True), {"reactivation": 50}),
    ((30, 50, True), {"expansion": 20}),
    ((50, 30, True), {"contraction": 20}),
    ((50, 0, True), {"churn": 50}),
    ((50, 50, True), {}),
    ((0, 0, True), {}),
]


def test_what_each_category_counts_alike_for_one_customer_and_for_columns():
    for (p, q, paid), moved in MOVES:
        assert movements.cells(Fraction(p), Fraction(q), paid) == {
            kind: moved.get(kind, 0) for kind in movements.KINDS if kind != "fx"}
    p, q, paid = (np.array(column) for column in zip(*(row for row, _ in MOVES), strict=True))
    columns = movements.cells(p, q, paid)
    for i, (_, moved) in enumerate(MOVES):
        assert {kind: int(v[i]) for kind, v in columns.items() if v[i]} == moved
    # NRR's categories over a cohort (MRR at start > 0): churn m0, expansion m1 - m0,
    # contraction m0 - m1
    m0, m1 = np.array([100, 50, 30, 40]), np.array([0, 80, 10, 40])
    assert {k: v.tolist() for k, v in nrr.cells(m0, m1).items()} == {
        "churn": [100, 0, 0, 0], "expansion": [0, 30, 0, 0], "contraction": [0, 0, 20, 0]}
    assert nrr.cells(Fraction(50), Fraction(80)) == {"churn": 0, "expansion": 30,
                                                     "contraction": 0}


def test_amounts_become_exact_cents():
    assert amount_to_cents("99.5") == 9950
    assert amount_to_cents("0") == 0
    assert amount_to_cents("123456789012345.99") == 12345678901234599
