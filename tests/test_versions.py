"""The bitemporal history of a customer, with no database: the rows held at a position
are exactly a fold of what was recorded by then. MRRs are in cents."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from projections.fold import CustomerHistory, fold_customer, scale_of, visible
from projections.versions import Versions, _recordings, _versions, fold_versions
from tests.feeds import Feed, at


def held(versions: Versions, position: int) -> CustomerHistory | None:
    """The customer as its rows at `position` tell it (None: not known yet)."""

    def at_position(rows: list) -> list:
        return [(key, value) for key, value, since, until in rows
                if since <= position and (until is None or until > position)]

    first_paid = at_position(versions.first_paid)
    if not first_paid:
        return None
    history = CustomerHistory(at_position(versions.steps), at_position(versions.attributes))
    assert [paid for _, paid in first_paid] == [history.first_paid]
    return history


def test_events_in_effective_order_add_rows_and_keep_the_old_ones_open():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-02-01", amount="150.00", recorded="2030-02-01")
    versions = fold_versions(feed.facts)
    assert versions.steps == [(at("2024-01-01"), Fraction(10000), 1, None),
                              (at("2024-02-01"), Fraction(15000), 2, None)]
    assert versions.first_paid == [(None, at("2024-01-01"), 1, None)]


def test_a_backdated_event_closes_the_rows_it_changes_at_its_position():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.add("subscription.changed", "2024-03-01", amount="150.00", recorded="2030-01-01")
    feed.add("subscription.cancelled", "2024-02-01", recorded="2030-02-01")  # backdated
    steps = fold_versions(feed.facts).steps
    assert steps == [
        (at("2024-01-01"), Fraction(10000), 2, None),  # untouched: open since the first recording
        (at("2024-02-01"), Fraction(0), 3, None),
        (at("2024-03-01"), Fraction(15000), 2, 3),  # the subscription was cancelled before
    ]


def test_a_void_closes_what_the_voided_event_made():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    created = feed.add("customer.updated", "2024-01-01", sub=None, attributes={"tier": "smb"},
                       recorded="2030-01-01")
    feed.add("event.voided", None, customer=None, sub=None, voids=created,
             recorded="2030-03-01")
    versions = fold_versions(feed.facts)
    assert versions.attributes == [(at("2024-01-01"), {"tier": "smb"}, 2, 3)]
    assert versions.steps == [(at("2024-01-01"), Fraction(10000), 2, None)]


def test_an_instant_recorded_again_later_closes_its_row_there():
    feed = Feed()
    feed.start("2024-01-01", recorded="2030-01-01")
    feed.start("2024-01-01", sub="s2", amount="50.00", recorded="2030-02-01")  # same instant
    versions = fold_versions(feed.facts)
    assert versions.steps == [(at("2024-01-01"), Fraction(10000), 1, 2),
                              (at("2024-01-01"), Fraction(15000), 2, None)]
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


KINDS = st.sampled_from(["started", "changed", "cancelled", "reactivated", "attributes",
                         "void"])
SCRIPTS = st.lists(st.tuples(KINDS, st.integers(1, 28), st.sampled_from(["s1", "s2"]),
                             st.integers(0, 2), st.booleans()), max_size=16)


def recorded(script: list[tuple]) -> Feed:
    """Facts from a script of (kind, day, subscription, amount, new recording instant)."""
    feed, instant = Feed(), 1
    for kind, day, sub, amount, next_instant in script:
        instant += next_instant
        when = {"recorded": f"2030-01-{instant:02d}"}
        effective = f"2024-{day % 12 + 1:02d}-{day:02d}"
        targets = [f for f in feed.facts if f.type != "event.voided"
                   and f.event_id not in {g.payload.get("voids") for g in feed.facts}]
        if kind == "void" and targets:
            feed.add("event.voided", None, customer=None, sub=None,
                     voids=targets[day % len(targets)].event_id, **when)
        elif kind in ("started", "reactivated"):
            feed.start(effective, amount=("0.00", "50.00", "99.99")[amount], sub=sub, **when)
            feed.facts[-1] = feed.facts[-1]._replace(type=f"subscription.{kind}")
        elif kind == "changed":
            feed.add("subscription.changed", effective, sub=sub, quantity=amount + 1, **when)
        elif kind == "cancelled":
            feed.add("subscription.cancelled", effective, sub=sub, **when)
        elif kind == "attributes":
            feed.add("customer.updated", effective, sub=None, attributes={"k": str(amount)},
                     **when)
    return feed


def assert_each_recording_is_a_fold_of_what_was_recorded_by_then(feed: Feed) -> Versions:
    versions = fold_versions(feed.facts)
    instants = {f.recorded_at: f.position for f in feed.facts}  # the last position of each
    for known_at, position in instants.items():
        assert held(versions, position) == fold_customer(visible(feed.facts, known_at))
    assert held(versions, 0) is None
    return versions


@given(SCRIPTS)
def test_the_rows_held_at_each_recording_are_a_fold_of_what_was_recorded_by_then(script):
    assert_each_recording_is_a_fold_of_what_was_recorded_by_then(recorded(script))


@given(SCRIPTS)
def test_a_history_recorded_in_effective_order_gives_the_rows_of_the_general_path(script):
    """Its shortcut (no version folded again) gives the very rows, not only equal views."""
    in_order = sorted((step for step in script if step[0] != "void"),
                      key=lambda step: (step[1] % 12, step[1]))
    feed = recorded(in_order)
    versions = assert_each_recording_is_a_fold_of_what_was_recorded_by_then(feed)
    batches = list(_recordings(feed.facts))
    scale = scale_of(feed.facts)
    steps, attributes, first_paid = _versions(feed.facts, scale, batches)
    assert versions == Versions([(at, Fraction(v, scale), *r) for at, v, *r in steps],
                                attributes, first_paid)
