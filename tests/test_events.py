"""The feed contract, rule by rule: one worked bad record per validation rule (no database)."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.events import InvalidEvent, decode_line, parse_event
from ledger.instants import format_instant, parse_instant, utc_instant
from tests.feeds import started

GOOD = started("e1", "s1", "c1", "2024-01-15T10:00:00+02:00")


def reason(payload: dict) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload)
    return caught.value.reason


def test_a_good_event_is_normalised_to_utc_and_keeps_unknown_fields():
    event = parse_event({**GOOD, "note": "kept for the audit trail"})
    assert event == {**GOOD, "effective_at": "2024-01-15T08:00:00.000000Z",
                     "note": "kept for the audit trail"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount": 99.0}, 'amount: 99.0 is a JSON number; write it as a decimal string: "99.00"'),
        ({"amount": 99.125}, 'amount: 99.125 is a JSON number; write it as a decimal string: '
                             '"99.125"'),
        ({"amount": "-1.00"}, "amount: must be a decimal string of ASCII digits, >= 0"),
        ({"amount": "9.9999999999999"}, "amount: must be a decimal string of ASCII digits"),
        ({"amount": "1e3"}, "amount: must be a decimal string of ASCII digits, >= 0"),
        ({"amount": "1000000000000"}, "amount: must be a decimal string of ASCII digits"),
        ({"amount": "\u0661\u0660\u0660.\u0665\u0660"}, "amount: must be a decimal string"),
        ({"amount": "10.00\n"}, "amount: must be a decimal string of ASCII digits"),
        ({"amount": " 10.00"}, "amount: must be a decimal string of ASCII digits"),
        ({"interval_count": 1001}, "interval_count: Input should be less than or equal to 1000"),
        ({"quantity": -1}, "quantity: Input should be greater than or equal to 0"),
        ({"quantity": 10**9 + 1}, "quantity: Input should be less than or equal to 1000000000"),
        ({"effective_at": "2024-01-15T10:00:00"},
         "effective_at: '2024-01-15T10:00:00' has no offset; add Z for UTC (or +hh:mm)"),
        ({"effective_at": "2024-01-15"}, "effective_at: '2024-01-15' is a date alone; write a "
                                         "timestamp with offset: 2024-01-15T00:00:00Z"),
        ({"effective_at": "2024-02-30T00:00:00Z"},
         "effective_at: '2024-02-30T00:00:00Z' is no real date and time (day is out of range"),
        ({"effective_at": 1700000000}, "effective_at: 1700000000 is a JSON number; write an RFC "),
        ({"event_id": ""}, "event_id: String should have at least 1 character"),
        ({"event_id": "x" * 201}, "event_id: String should have at most 200 characters"),
        ({"customer_id": "c\u0000"}, "customer_id: must not contain a NUL character"),
        ({"type": "subscription.paused"}, "type: unknown event type 'subscription.paused'"),
        ({"interval": "fortnight"}, "interval: Input should be 'day', 'week', 'month' or 'year'"),
        ({"interval_count": 0}, "interval_count: Input should be greater than or equal to 1"),
        ({"quantity": "2"}, "quantity: Input should be a valid integer"),
        ({"quantity": 1.5}, "quantity: Input should be a valid integer"),
        ({"currency": "usd"}, "currency: must be an ISO 4217 code"),
        ({"currency": "US\u0130"}, "currency: must be an ISO 4217 code"),
        ({"customer_id": 42}, 'customer_id: 42 is a JSON number; write it as a string: "42"'),
    ],
)
def test_each_rule_rejects_with_a_reason_naming_the_field(change, expected):
    assert reason({**GOOD, **change}).startswith(expected)


def test_required_fields_are_named():
    payload = dict(GOOD)
    del payload["plan"]
    assert reason(payload) == "plan: Field required"


def test_a_change_must_name_a_term():
    change = {"event_id": "e2", "type": "subscription.changed", "customer_id": "c1",
              "subscription_id": "s1", "effective_at": "2024-01-01T00:00:00Z"}
    assert "names none of plan, amount" in reason(change)
    assert parse_event({**change, "quantity": 3})["quantity"] == 3


@pytest.mark.parametrize("term", ["plan", "amount", "currency", "interval", "interval_count",
                                  "quantity"])
def test_a_change_keeps_a_term_by_leaving_it_out_not_by_a_null(term):
    change = {"event_id": "e2", "type": "subscription.changed", "customer_id": "c1",
              "subscription_id": "s1", "effective_at": "2024-01-01T00:00:00Z", "plan": "p"}
    assert reason({**change, term: None}) == (
        f"{term}: must not be null (leave the field out to keep the term)")


def test_a_void_needs_no_effective_time_but_must_name_its_target():
    assert parse_event({"event_id": "v1", "type": "event.voided", "voids": "e1"})["voids"] == "e1"
    assert reason({"event_id": "v1", "type": "event.voided"}) == "voids: Field required"


def test_customer_attributes_are_strings():
    base = {"event_id": "c", "type": "customer.created", "customer_id": "c1",
            "effective_at": "2024-01-01T00:00:00Z"}
    assert parse_event({**base, "attributes": {"region": "EU"}})["attributes"] == {"region": "EU"}
    assert reason({**base, "attributes": {"seats": 3}}).startswith("attributes.seats:")
    assert reason({**base, "attributes": {"plan": None}}).startswith(
        "attributes.plan: Input should be a valid string")
    assert reason({**base, "type": "customer.updated"}) == "attributes: Field required"


def test_the_event_id_is_reported_when_it_can_be_read():
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, "amount": 5})
    assert caught.value.event_id == "e1"
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, "event_id": 7})
    assert caught.value.event_id == "-"


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b'{"event_id": "e1",', "invalid JSON"), (b"[1, 2]", "not a JSON object"),
     (b"\xff\xfe", "invalid JSON"), (b'{"a": NaN}', "invalid JSON")],
)
def test_lines_that_are_not_json_objects(line, expected):
    with pytest.raises(InvalidEvent) as caught:
        decode_line(line)
    assert caught.value.reason.startswith(expected)


@pytest.mark.parametrize(
    ("extra", "where"),
    [(b'"big": 123456789012345678901234567890', "big"),
     (b'"meta": {"ids": [1, 2, 99999999999999999999]}', "meta.ids.2"),
     (b'"ratio": 1e300', "ratio")],
)
def test_a_number_that_would_not_be_kept_exactly_is_refused_with_its_path(extra, where):
    """orjson reads integers beyond 64 bits (and huge exponents) as floats: stored, they
    would differ from what was sent. Small floats in extra fields are kept as given."""
    line = b'{"event_id": "e1", ' + extra + b"}"
    with pytest.raises(InvalidEvent) as caught:
        decode_line(line)
    assert (caught.value.event_id, caught.value.reason.split(":")[0]) == ("e1", where)
    assert decode_line(b'{"event_id": "e1", "meta": {"score": [0.5, 12]}}')["meta"]


@given(st.datetimes(timezones=st.just(UTC)))
def test_an_instant_in_the_usual_form_reads_as_the_general_rule_reads_it(moment):
    """Whole seconds in UTC (`...T08:00:00Z`) skip the general conversion: same result."""
    text = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert utc_instant(text) == format_instant(parse_instant(text))


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z",
                                  "2024-13-01T00:00:00Z", "2024-01-01T00:00:61Z",
                                  "٢٠٢٤-01-01T00:00:00Z", "2024-01-01T00:00:00Z\n",
                                  "2024-01-01T00:00:00.Z", "0001-01-01T00:00:00+00:01"])
def test_an_impossible_instant_in_the_usual_form_is_refused(text):
    with pytest.raises(ValueError):
        utc_instant(text)


@pytest.mark.parametrize(("text", "utc"), [
    ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),  # a leap second: the minute's end
    ("2017-01-01T05:29:60.5+05:30", "2016-12-31T23:59:59.999999Z"),
    ("2024-01-15T08:00:00.123456789Z", "2024-01-15T08:00:00.123456Z"),  # cut, never rounded
    ("2024-01-31T23:59:59.9999999Z", "2024-01-31T23:59:59.999999Z"),  # stays in January
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ("2024-01-01T00:00:00-00:00", "2024-01-01T00:00:00.000000Z"),
])
def test_every_valid_rfc3339_instant_is_kept_to_the_microsecond(text, utc):
    assert utc_instant(text) == utc
    assert parse_event({**GOOD, "effective_at": text})["effective_at"] == utc


@pytest.mark.parametrize("change", [
    {"amount": "999999999999.999999999999"}, {"amount": "0.000000000001"}, {"amount": "0"},
    {"interval_count": 1000}, {"quantity": 0}, {"quantity": 10**9},
])
def test_the_extremes_the_contract_allows_are_accepted(change):
    assert parse_event({**GOOD, **change})


def test_a_snapshot_carries_a_status_of_active_or_inactive():
    snapshot = {**GOOD, "type": "subscription.snapshot", "status": "inactive"}
    assert parse_event(snapshot)["status"] == "inactive"
    assert reason({**snapshot, "status": "paused"}).startswith(
        "status: Input should be 'active' or 'inactive'")
    assert reason({k: v for k, v in snapshot.items() if k != "status"}) == "status: Field required"
