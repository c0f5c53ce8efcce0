"""The bitemporal history of a customer, with no database: the rows held at a position
are exactly a fold of what was recorded by then. MRRs are in cents."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from hypothesis import given

from ledger.events import parse_event
from projections import reference
from projections.facts import Fact
from projections.fold import CustomerHistory
from projections.history import History
from projections.versions import Versions, fold_versions
from tests.feeds import Feed, at
from tests.strategies import DrawnFeed, feeds


def held(versions: Versions, position: int) -> CustomerHistory | None:
    """The customer as its rows at `position` tell it (None: not known yet)."""

    def at_position(rows: list) -> list:
        return [(key, value) for key, value, since, until in rows
                if since <= position and (until is None or until > position)]

    first_paid = at_position(versions.first_paid)
    if not first_paid:
        return None
    native: dict[str, list] = {}
    for (currency, effective_at), mrr in at_position(versions.steps):
        native.setdefault(currency, []).append((effective_at, mrr))
    history = CustomerHistory(native, at_position(versions.attributes))
    assert [paid for _, paid in first_paid] == [history.first_paid]
    return history


def test_events_in_effective_order_add_rows_and_keep_the_old_ones_open():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-02-01", amount="150.00", recorded="2030-02-01")
    versions = fold_versions(feed.facts)
    assert versions.steps == [(("USD", at("2024-01-01")), Fraction(10000), 1, None),
                              (("USD", at("2024-02-01")), Fraction(15000), 2, None)]
    assert versions.first_paid == [(None, at("2024-01-01"), 1, None)]


def test_a_backdated_event_closes_the_rows_it_changes_at_its_position():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-03-01", amount="150.00", recorded="2030-01-01")
    feed.add("subscription.cancelled", "2024-02-01", recorded="2030-02-01")  # backdated
    steps = fold_versions(feed.facts).steps
    assert steps == [
        # untouched: open since the first recording
        (("USD", at("2024-01-01")), Fraction(10000), 2, None),
        (("USD", at("2024-02-01")), Fraction(0), 3, None),
        # the subscription was cancelled before
        (("USD", at("2024-03-01")), Fraction(15000), 2, 3),
    ]


def test_a_backdated_change_of_currency_moves_the_mrr_from_one_currencys_rows_to_the_other():
    """Contract v2: MRR is kept per currency billed. A change to USD recorded late, between
    a EUR start and a later price change, takes the EUR MRR out at its instant and puts it
    into USD there; the later change now moves USD, not EUR (row keys: currency, instant)."""
    feed = Feed()
    feed.add("subscription.started", "2024-01-01", amount="100.00", currency="EUR", plan="p",
             interval="month", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-03-01", amount="150.00", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-02-01", currency="USD", recorded="2030-02-01")
    versions = fold_versions(feed.facts)
    assert versions.steps == [
        (("EUR", at("2024-01-01")), Fraction(10000), 2, None),
        (("EUR", at("2024-02-01")), Fraction(0), 3, None),
        (("EUR", at("2024-03-01")), Fraction(15000), 2, 3),  # now billed in USD by then
        (("USD", at("2024-02-01")), Fraction(10000), 3, None),
        (("USD", at("2024-03-01")), Fraction(15000), 3, None),
    ]
    assert versions.first_paid == [(None, at("2024-01-01"), 2, None)]


def test_a_void_closes_what_the_voided_event_made():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    created = feed.add("customer.updated", "2024-01-01", sub=None, attributes={"tier": "smb"},
                       recorded="2030-01-01")
    feed.add("event.voided", None, customer=None, sub=None, voids=created,
             recorded="2030-03-01")
    versions = fold_versions(feed.facts)
    assert versions.attributes == [(at("2024-01-01"), {"tier": "smb"}, 2, 3)]
    assert versions.steps == [(("USD", at("2024-01-01")), Fraction(10000), 2, None)]


def test_an_instant_recorded_again_later_closes_its_row_there():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.start("2024-01-01", sub="s2", amount="50.00", recorded="2030-02-01")  # same instant
    versions = fold_versions(feed.facts)
    assert versions.steps == [(("USD", at("2024-01-01")), Fraction(10000), 1, 2),
                              (("USD", at("2024-01-01")), Fraction(15000), 2, None)]
    assert versions.first_paid == [(None, at("2024-01-01"), 1, None)]


def test_the_first_paid_instant_is_known_from_the_recording_that_brought_it():
    feed = Feed()
    feed.start("2024-01-01", amount="0.00", recorded="2030-01-01")  # a trial
    feed.add("subscription.changed", "2024-02-01", amount="90.00", recorded="2030-02-01")
    assert fold_versions(feed.facts).first_paid == [(None, None, 1, 2),
                                                    (None, at("2024-02-01"), 2, None)]


def test_one_recording_instant_is_one_version_at_its_last_position():
    feed = Feed()
    feed.start("2024-02-01", recorded="2030-01-01")
    feed.start("2024-01-01", sub="s2", recorded="2030-01-01")  # backdated, same transaction
    versions = fold_versions(feed.facts)
    assert {since for *_, since, _ in versions.steps} == {2}
    assert all(until is None for *_, until in versions.steps)


def per_customer(drawn: DrawnFeed, recordings: list[list[dict]] | None = None
                 ) -> Iterator[tuple[list[Fact], list[reference.Event]]]:
    """Each customer's facts (as the fast path reads them) and events (as the reference
    reads them): one recording per ingest, or per list of `recordings`."""
    facts: dict[str, list[Fact]] = {}
    events: dict[str, list[reference.Event]] = {}
    owner: dict[str, str] = {}
    position = 0
    for k, recording in enumerate(recordings or drawn.recorded):
        for record in recording:
            position += 1
            event = parse_event(record)
            void = record["type"] == "event.voided"
            customer = owner[record["voids"]] if void else record.get("customer_id")
            if record["type"] == "fx.rate":
                customer = None  # contract v2: a rate (and its void) has no customer
            owner[record["event_id"]] = customer
            if customer is None:
                continue
            facts.setdefault(customer, []).append(Fact(
                position, at(f"2030-01-{k + 1:02d}"), record["event_id"], record["type"],
                None if void else event["effective_at"], None if void else customer,
                record.get("subscription_id") if record["type"].startswith("subscription.")
                else None, record))
            events.setdefault(customer, []).append(
                reference.Event(position, at(f"2030-01-{k + 1:02d}"), record))
    for customer in facts:
        yield facts[customer], events[customer]


def assert_held_as_the_reference_folds(facts: list[Fact], events: list[reference.Event]
                                       ) -> None:
    versions = fold_versions(facts)
    assert held(versions, 0) is None
    for position, expected in reference.versions(events):
        got = held(versions, position)
        assert got is not None
        assert {c: [(at, value / 100) for at, value in steps]
                for c, steps in got.steps.items()} == expected.steps
        assert got.attributes == expected.attributes
        assert got.first_paid == expected.first_paid


@given(feeds(max_ingests=4))
def test_the_rows_held_at_each_recording_are_the_reference_fold_of_what_was_recorded(drawn):
    for facts, events in per_customer(drawn):
        assert_held_as_the_reference_folds(facts, events)


@given(feeds(max_ingests=4))
def test_events_recorded_one_at_a_time_and_late_are_held_as_the_reference_folds(drawn):
    """The webhook pattern: every event its own recording, many of them backdated, voids
    among them; each version is made from the one before, and must be the fold."""
    one_each = [[event] for recording in drawn.recorded for event in recording]
    for facts, events in per_customer(drawn, one_each):
        assert_held_as_the_reference_folds(facts, events)


@given(feeds(max_ingests=1))
def test_a_history_recorded_in_effective_order_gives_the_rows_of_the_general_path(drawn):
    """Its shortcut (no version folded again) gives the very rows, not only equal views."""
    kept = [e for e in drawn.recorded[0] if e["type"] != "event.voided"]
    in_order = sorted(kept, key=lambda e: parse_event(e)["effective_at"])
    for facts, _ in per_customer(drawn, [[e] for e in in_order]):
        history = History()
        for fact in facts:  # one recording each
            history.record(fact.position, [fact])
        assert fold_versions(facts) == Versions(*history.versions())
