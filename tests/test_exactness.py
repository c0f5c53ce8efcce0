"""Worked examples of contract v1.1 that once gave wrong figures, on both stores: voids that
carry an effective time or extra fields, repeated segment keys, the extreme dates and
terms the contract allows, and a `verify` that a wrong fast path cannot fool."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from click.testing import CliRunner

from cli import main
from ledger.application import LedgerApplication
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.kinds import VOID
from projections.facts import Fact
from projections.projection import MRRProjection
from projections.versions import Versions, fold_versions
from services.verify import verify_ledger
from tests.feeds import changed, jsonl, started, voided


def revledger(db_url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--db", db_url, *args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def figures(db_url: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--db", db_url, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # warnings go to stderr


def ingest(db_url: str, *events: dict) -> None:
    path = f"/tmp/revledger-test-{abs(hash(db_url))}.jsonl"
    with open(path, "wb") as f:
        f.write(jsonl(*events))
    revledger(db_url, "ingest", path)


E1 = started("e1", "s1", "c1", "2024-01-01T00:00:00Z", "100.00")
E2 = changed("e2", "s1", "c1", "2024-02-01T00:00:00Z", amount="150.00")
E3 = changed("e3", "s1", "c1", "2024-03-01T00:00:00Z", quantity=2)
# The example: a void effective at the customer's latest instant.
V1 = voided("v1", "e2", effective_at="2024-03-01T00:00:00Z")


@pytest.mark.parametrize("split", [False, True], ids=["one ingest", "two ingests"])
def test_a_void_carrying_an_effective_time_stops_its_target_counting(db_url, split):
    if split:
        ingest(db_url, E1, E2, E3)
        ingest(db_url, V1)
    else:
        ingest(db_url, E1, E2, E3, V1)
    assert figures(db_url, "mrr", "--at", "2024-03-15")["mrr_exact"] == "200"
    nrr = figures(db_url, "nrr", "--start", "2024-01-31", "--end", "2024-03-15")
    explain = figures(db_url, "explain", "nrr", "--start", "2024-01-31", "--end", "2024-03-15")
    assert nrr["ending_mrr_exact"] == explain["totals"]["ending_mrr_exact"] == "200"
    assert figures(db_url, "movements", "--start", "2024-02", "--end", "2024-02")[
        "months"][0]["expansion_exact"] == "0"  # the voided rise to 150 never happened
    revledger(db_url, "verify")


@pytest.mark.parametrize("void_at", ["2023-01-01T00:00:00Z", "2024-06-01T00:00:00+05:30",
                                     "9999-12-31T23:59:59Z"])
@pytest.mark.parametrize("target", ["start", "change", "cancel", "attributes"])
def test_a_void_of_any_type_at_any_instant_is_as_if_the_target_never_was(db_url, void_at,
                                                                          target):
    events = {
        "start": started("t", "s2", "c1", "2024-02-01T00:00:00Z", "50.00"),
        "change": changed("t", "s1", "c1", "2024-02-01T00:00:00Z", quantity=3),
        "cancel": {**changed("t", "s1", "c1", "2024-02-01T00:00:00Z"),
                   "type": "subscription.cancelled"},
        "attributes": {"event_id": "t", "type": "customer.updated", "customer_id": "c1",
                       "effective_at": "2024-02-01T00:00:00Z", "attributes": {"region": "EU"}},
    }
    ingest(db_url, E1, events[target], voided("v", "t", effective_at=void_at))
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "100"
    assert figures(db_url, "nrr", "--start", "2024-01-31", "--end", "2024-03-31",
                   "--segment", "region=EU")["customers"] == 0
    revledger(db_url, "verify")


def test_extra_fields_on_a_void_are_kept_and_ignored(db_url):
    ingest(db_url, E1, E2, voided("v1", "e2", attributes={"region": "EU"}, amount="1.00"))
    segment = figures(db_url, "nrr", "--start", "2024-02-15", "--end", "2024-03-31",
                      "--segment", "region=EU")
    assert segment["customers"] == 0
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "100"
    assert figures(db_url, "events")[-1]["payload"]["attributes"] == {"region": "EU"}  # kept


def test_a_segment_key_given_twice_with_two_values_is_a_usage_error(sqlite_url):
    ingest(sqlite_url, E1)
    output = revledger(sqlite_url, "nrr", "--start", "2024-01-31", "--end", "2024-03-31",
                       "--segment", "k=a", "--segment", "k=b", code=2)
    assert "key 'k' given twice ('a' and 'b'): no customer has both values" in output
    assert figures(sqlite_url, "nrr", "--start", "2024-01-31", "--end", "2024-03-31",
                   "--segment", "k=a", "--segment", "k=a")["segment"] == {"k": "a"}


ANCIENT = started("old", "s0", "c0", "0001-01-01T00:00:00Z", "10.00")
FAR = started("far", "s9", "c9", "9999-12-31T23:59:59.999999Z", "7.00")


@pytest.mark.parametrize("args", [
    ("mrr", "--at", "9999-12-31"), ("mrr", "--at", "0001-01-01"),
    ("nrr", "--start", "0001-01-01", "--end", "9999-12-31"),
    ("nrr", "--start", "2024-01-31", "--end", "9999-12-31", "--cohort", "9999"),
    ("nrr", "--start", "2024-01-31", "--end", "9999-12-31", "--cohort", "9999-Q4"),
    ("mrr", "--at", "2024-03-15", "--known-at", "9999-12-31T00:00:00Z"),
    ("mrr", "--at", "2024-03-15", "--known-at", "0001-01-01"),
    ("movements", "--start", "0001-01", "--end", "0001-03"),
    ("movements", "--start", "9999-10", "--end", "9999-12"),
    ("cohorts", "--start", "9999-01", "--end", "9999-12"),
    ("cohorts", "--start", "0001-01", "--end", "0001-12", "--grain", "year"),
    ("report", "--start", "0001-01-01", "--end", "9999-12-31"),
    ("report", "--start", "9999-12-31", "--end", "9999-12-31"),
    ("chart", "nrr", "--start", "0001-01", "--end", "0001-06", "--out", "/tmp/rl-chart.png"),
    ("chart", "movements", "--start", "9999-06", "--end", "9999-12", "--out",
     "/tmp/rl-chart.png"),
])
def test_every_date_the_contract_allows_gets_an_answer(db_url, args):
    ingest(db_url, ANCIENT, E1, FAR)
    revledger(db_url, *args)


def test_the_extreme_dates_give_the_contract_figures(db_url):
    ingest(db_url, ANCIENT, E1, FAR)
    assert figures(db_url, "mrr", "--at", "0001-01-01")["mrr_exact"] == "10"
    assert figures(db_url, "mrr", "--at", "9999-12-30")["mrr_exact"] == "110"
    assert figures(db_url, "mrr", "--at", "9999-12-31")["mrr_exact"] == "117"
    first = figures(db_url, "movements", "--start", "0001-01", "--end", "0001-02")["months"]
    assert [(m["month"], m["new_exact"]) for m in first] == [("0001-01", "10"), ("0001-02", "0")]
    last = figures(db_url, "movements", "--start", "9999-12", "--end", "9999-12")["months"]
    assert last[0]["new_exact"] == "7"
    assert figures(db_url, "nrr", "--start", "2024-01-31", "--end", "9999-12-31",
                   "--cohort", "0001")["starting_mrr_exact"] == "10"


def test_a_customer_paying_centuries_ago_reactivates_without_walking_every_month(db_url):
    ingest(db_url, ANCIENT, {**changed("stop", "s0", "c0", "0001-02-01T00:00:00Z"),
                             "type": "subscription.cancelled"},
           {**started("back", "s0", "c0", "2024-03-05T00:00:00Z", "20.00"),
            "type": "subscription.reactivated"})
    march = figures(db_url, "movements", "--start", "2024-03", "--end", "2024-03")["months"][0]
    assert (march["reactivation_exact"], march["new_exact"]) == ("20", "0")


@pytest.mark.parametrize(("terms", "mrr"), [
    ({"interval_count": 997, "amount": "997.00"}, "1"),
    ({"interval_count": 1000, "interval": "day", "amount": "0.000000000001"},
     "73/2400000000000000"),
    ({"quantity": 10**9, "amount": "999999999999.999999999999"},
     "999999999999999999999999/1000"),
    ({"quantity": 0}, "0"),
])
def test_the_extreme_terms_are_exact(db_url, terms, mrr):
    """With customers on five large prime interval counts beside it, so the query columns
    need a denominator of hundreds of digits."""
    primes = (991, 983, 977, 971, 967)
    ingest(db_url, started("e1", "s1", "c1", "2024-01-01T00:00:00Z", **terms),
           *(started(f"x{n}", f"x{n}", f"c{n}", "2024-01-01T00:00:00Z", interval_count=n)
             for n in primes))
    assert figures(db_url, "history", "--customer", "c1")["events"][0]["mrr_after_exact"] == mrr
    total = Fraction(mrr) + sum(Fraction(100, n) for n in primes)
    assert Fraction(figures(db_url, "mrr", "--at", "2024-01-31")["mrr_exact"]) == total
    month = figures(db_url, "movements", "--start", "2024-01", "--end", "2024-01")["months"][0]
    assert Fraction(month["new_exact"]) == total
    revledger(db_url, "verify")


def test_a_snapshot_sets_every_term_and_its_status(db_url):
    snapshot = {**started("snap", "s1", "c1", "2024-02-01T00:00:00Z", "30.00", quantity=2),
                "type": "subscription.snapshot", "status": "active"}
    inactive = {**snapshot, "event_id": "snap2", "effective_at": "2024-03-01T00:00:00Z",
                "status": "inactive"}
    ingest(db_url, snapshot, E1, inactive)  # the first word the ledger has of s1: a snapshot
    assert figures(db_url, "mrr", "--at", "2024-01-15")["mrr_exact"] == "100"
    assert figures(db_url, "mrr", "--at", "2024-02-15")["mrr_exact"] == "60"
    assert figures(db_url, "mrr", "--at", "2024-03-15")["mrr_exact"] == "0"
    revledger(db_url, "verify")


def ignoring_voids(facts: list[Fact]) -> Versions:
    """A deliberately wrong fast path: it folds voided events as if no void existed."""
    return fold_versions([f for f in facts if f.type != VOID])


def test_verify_catches_a_fast_path_that_ignores_voids(db_url):
    with LedgerApplication(db_url) as app:
        lines = numbered_lines(jsonl(E1, E2, E3, V1).splitlines())
        Ingestor(app).ingest(lines, lambda r: None, lambda s: None)
        MRRProjection(app, fold=ignoring_voids).catch_up()
    result = verify_ledger(db_url)
    assert not result.ok
    difference = result.projection.difference
    assert (difference.customer, difference.what) == ("c1", "MRR steps")
    output = revledger(db_url, "verify", code=1)
    assert "the projection of customer c1 differs from the reference fold of its events at " \
        f"position {difference.position} (MRR steps): run `revledger replay`" in output
    revledger(db_url, "replay")
    assert verify_ledger(db_url).ok


def test_a_status_on_a_start_is_an_extra_and_verify_agrees(db_url):
    """Found by an independent oracle: the reference once read it as a snapshot's."""
    ingest(db_url, {**E1, "status": "inactive"})
    assert figures(db_url, "mrr", "--at", "2024-01-31")["mrr_exact"] == "100"
    revledger(db_url, "verify")


def test_a_voids_extras_do_not_name_its_customer_in_the_listing(db_url):
    """Listed under its target's customer (the filter), naming none of its own: a void's
    `customer_id` is an extra, kept in the payload as delivered."""
    ingest(db_url, E1, voided("v1", "e1", customer_id="zz", subscription_id="s9"))
    (void,) = figures(db_url, "events", "--customer", "c1", "--type", "event.voided")
    assert (void["event_id"], void["customer_id"], void["subscription_id"]) == ("v1", None, None)
    assert void["payload"]["customer_id"] == "zz"
