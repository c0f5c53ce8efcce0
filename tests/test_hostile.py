"""Hostile input: every line is rejected with a one-line reason or stored exactly as given;
never a traceback, a hang or a partial write. Fuzzed with hypothesis, plus worked cases on
both stores."""

from __future__ import annotations

import json
import tempfile

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from ledger.feed import numbered_lines
from ledger.ingest import Ingestor
from ledger.sources import channel
from ledger.text import printable
from services.events import list_events
from services.ingest import ingest_feed
from services.ledger import open_ledger
from services.verify import verify_ledger
from tests import stripe_fixtures as stripe
from tests.feeds import started
from tests.stripe_fixtures import LATEST, T0

BASE = started("e", "s", "c", "2024-01-01T00:00:00Z")


def event(evt_id: str, kind: str, obj: dict, created: int, previous: dict | None = None) -> dict:
    """A Stripe Event as delivered to a webhook of the latest API version."""
    return stripe.event(LATEST, evt_id, kind, obj, created, previous)


def subscription(sub_id: str = "sub_1", customer: str = "cus_1") -> dict:
    return stripe.subscription(LATEST, sub_id, customer)

HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and Infinity included: written as JSON does not allow
    st.text(max_size=40),
    st.sampled_from([
        None, True, [], {}, [1, [2, [3]]], {"a": {"b": None}}, "x" * 1_000_000,
        "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2024-02-30T00:00:00Z",
        "2024-01-01T00:00:00", "U\u0405D", "\uff35\uff33\uff24", "usd",
        "x'; DROP TABLE stored_events; --",
        "\u0000", "-1.00", "1e3", "99.999", "", " ",
    ]),
)
RAW_LINES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([
        b'{"event_id": "n", "amount": NaN}', b'{"event_id": "i", "amount": Infinity}',
        b"[" * 5000 + b"]" * 5000, b'{"a": ' * 3000 + b"1" + b"}" * 3000,
        b"\xff\xfe\x00", b'{"event_id": "t"', b"null", b'"just a string"',
    ]),
)


def hostile_line(data: st.DataObject, n: int) -> bytes:
    if data.draw(st.booleans()):
        return data.draw(RAW_LINES)
    event = {**BASE, "event_id": f"e{n}", "subscription_id": f"s{n}"}
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.sampled_from([*event, "extra"]))
        event[field] = data.draw(HOSTILE_VALUES)
    line = json.dumps(event).encode()  # big integers and NaN as given
    if data.draw(st.booleans()):
        line = line[: data.draw(st.integers(0, len(line)))]  # truncated
    return line


def check(url: str, lines: list[bytes]) -> None:
    rejected: dict[int, str] = {}
    result = ingest_feed(url, lines, on_reject=lambda r: rejected.__setitem__(r.line, r.reason))
    stored = {e["event_id"]: e["payload"] for e in list_events(url)}
    for number, line in enumerate(lines, start=1):
        if number in rejected:
            assert rejected[number] and "\n" not in rejected[number]
            continue
        if not line.strip():
            continue
        payload = orjson.loads(line)
        assert stored[payload["event_id"]] == payload  # exactly as given
    assert result.summary.accepted == len(stored)
    assert verify_ledger(url).ok


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_lines_are_rejected_in_one_line_or_stored_exactly(data):
    lines = [hostile_line(data, n) for n in range(data.draw(st.integers(1, 6)))]
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]  # one per line
    with tempfile.TemporaryDirectory() as tmp:
        check(f"sqlite:///{tmp}/fuzz.db", lines)


@pytest.mark.parametrize("line", [
    orjson.dumps({**BASE, "plan": "x" * 1_000_000}),
    orjson.dumps({**BASE, "event_id": "x'; DROP TABLE event_keys; --"}),
    orjson.dumps({**BASE, "note": "\u0000\u202e", "nested": [[[{"a": [1, 2]}]]]}),
    orjson.dumps({**BASE, "event_id": "e\u0000", "customer_id": "c\u0000"}),  # no NUL in ids
    orjson.dumps({**BASE, "currency": "U\u0405D"}),
    json.dumps({**BASE, "quantity": 2**70}).encode(),
    orjson.dumps({**BASE, "effective_at": "9999-12-31T23:59:59-01:00"}),
    b"[" * 5000 + b"]" * 5000,
    b'{"event_id": "n", "amount": NaN}',
    b"\xff\xfe\xfd",
])
def test_hostile_lines_on_both_stores(db_url, line):
    check(db_url, [line, orjson.dumps({**BASE, "event_id": "good", "subscription_id": "g"})])
    assert "good" in {e["event_id"] for e in list_events(db_url)}



def test_a_line_over_128_kib_is_refused_in_one_line(sqlite_url):
    rejected = []
    line = orjson.dumps({**BASE, "note": "x" * (128 << 10)})
    ingest_feed(sqlite_url, [line], on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [f"line 1: -: line longer than 128 KiB ({len(line)} bytes): a "
                        "canonical event is a few hundred bytes"]


# -- deep nesting: a valid line nested ~1,000 deep costs only itself, on every path ---------

DEPTH_REASON = "nested deeper than 64 levels of objects and arrays"


def deep(event_id: str, depth: int = 1000) -> bytes:
    """A valid ~2 KB canonical line whose extra field nests `depth` arrays (orjson reads up
    to 1,024 levels, writes only 254, and a Python walk overflows near 1,000)."""
    line = orjson.dumps({**BASE, "event_id": event_id, "subscription_id": "s-" + event_id})
    return line[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"


def good(n: int) -> bytes:
    return orjson.dumps({**BASE, "event_id": f"g{n}", "subscription_id": f"s{n}"})


def test_json_up_to_the_depth_limit_is_read_and_one_level_more_is_refused(sqlite_url):
    rejected: list[str] = []
    at_limit = deep("ok", 63)  # the top object is level 1
    ingest_feed(sqlite_url, [at_limit, deep("no", 64)], on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [f"line 2: no: {DEPTH_REASON}"]
    assert [e["payload"] for e in list_events(sqlite_url)] == [orjson.loads(at_limit)]


@pytest.mark.parametrize("depth", [1000, 1100])  # within orjson's own limit, and beyond it
def test_a_deeply_nested_line_in_a_good_feed_is_rejected_alone(db_url, depth):
    assert len(deep("d", depth)) > 2000
    rejected: list[str] = []
    result = ingest_feed(db_url, [good(1), deep("d", depth), good(2)],
                         on_reject=lambda r: rejected.append(str(r)))
    name = "d" if depth == 1000 else "-"  # beyond orjson's limit nothing of it is read
    assert rejected == [f"line 2: {name}: {DEPTH_REASON}"]
    assert (result.summary.accepted, result.summary.rejected) == (2, 1)
    assert [e["event_id"] for e in list_events(db_url)] == ["g1", "g2"]
    assert verify_ledger(db_url).ok


def test_a_deeply_nested_line_checked_in_the_second_process_is_rejected_alone(db_url):
    rejected: list[str] = []
    lines = [good(1), good(2), deep("d"), good(3), good(4), deep("e"), good(5)]
    with open_ledger(db_url) as app:  # batches of 2: a forked process checks most of them
        summary = Ingestor(app, batch_size=2, parallel=True).ingest(
            numbered_lines(lines), lambda r: rejected.append(str(r)))
    assert rejected == [f"line 3: d: {DEPTH_REASON}", f"line 6: e: {DEPTH_REASON}"]
    assert summary.accepted == 5
    assert [e["event_id"] for e in list_events(db_url)] == [f"g{n}" for n in range(1, 6)]


def test_a_deeply_nested_stripe_event_in_an_export_is_rejected_alone(db_url):
    events = [event(f"evt_{n}", "customer.subscription.created",
                    subscription(f"sub_{n}", f"cus_{n}"), T0) for n in range(3)]
    events[1]["data"]["object"]["metadata"] = {"x": "DEEP"}
    lines = [orjson.dumps(e).replace(b'"DEEP"', b"[" * 900 + b"]" * 900) for e in events]
    rejected: list[str] = []
    result = ingest_feed(db_url, [line + b"\n" for line in lines], source="stripe",
                         on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [f"line 2: stripe:evt_1: {DEPTH_REASON.replace('64', '63')}"]
    assert result.summary.accepted == 2


# -- duplicate keys: refused, the key named, whatever their layout --------------------------

@pytest.mark.parametrize(("line", "reason"), [
    (b'{"event_id": "d", "amount": "1.00", "amount": "2.00"}', "duplicate key 'amount'"),
    (b'{"event_id": "d", "attributes": {"a": "1" , "a" :\n"2"}}', "duplicate key 'a'"),
    (b'{"event_id": "d", "note": "\\" :", "x": {"k\\n": 1, "k\\u000a": 2}}',
     "duplicate key 'k\\n'"),  # escaped when printed: the key holds a newline
])
def test_a_key_twice_in_one_object_is_refused_naming_the_key(db_url, line, reason):
    rejected: list[str] = []
    ingest_feed(db_url, [line, good(1)], on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [f"line 1: d: {reason} in one object"]
    assert [e["event_id"] for e in list_events(db_url)] == ["g1"]


def test_keys_repeated_in_different_objects_or_inside_strings_are_fine(sqlite_url):
    line = orjson.dumps({**BASE, "a": {"plan": "x"}, "b": [{"plan": "y"}], "c": '"plan": 1'})
    indented = json.dumps({**BASE, "event_id": "i", "subscription_id": "i"}, indent=2)
    result = ingest_feed(sqlite_url, [line, indented.replace("\n", " ").encode()])
    assert result.summary.accepted == 2


def test_a_duplicate_key_in_a_stripe_export_line_is_refused_naming_it(db_url):
    body = orjson.dumps(event("evt_1", "customer.subscription.created", subscription(), T0))
    rejected: list[str] = []
    ingest_feed(db_url, [body[:-1] + b',"type":"customer.subscription.deleted"}'],
                source="stripe", on_reject=lambda r: rejected.append(str(r)))
    assert rejected == ["line 1: stripe:evt_1: duplicate key 'type' in one object"]


# -- amounts: ASCII digits only, nothing around them ----------------------------------------

@pytest.mark.parametrize("amount", ["\u0661\u0660\u0660.\u0665\u0660", "\uff11\uff10.00",
                                    "10.00 ", " 10.00", "10.00\n", "\u00a010.00",
                                    "10.00\u2003", "1\u066b00", "10.0\U0001d7ce"])
def test_an_amount_with_non_ascii_digits_or_white_space_is_refused(db_url, amount):
    rejected: list[str] = []
    ingest_feed(db_url, [orjson.dumps({**BASE, "amount": amount})],
                on_reject=lambda r: rejected.append(r.reason))
    assert rejected == ["amount: must be a decimal string of ASCII digits, >= 0 and < 10^12, "
                        'with at most 12 decimal places (e.g. "99.00")']
    assert list_events(db_url) == []


# -- whatever is echoed of the input is escaped: a newline in an id forges no line ----------

@pytest.mark.parametrize(("text", "shown"), [
    ("evt_1", "evt_1"),
    ("café ünïcode", "café ünïcode"),  # printable letters stay as they are
    ("a\nline 9: forged: ok", "a\\nline 9: forged: ok"),
    ("tab\there\rcr", "tab\\there\\rcr"),
    ("\x1b[2Jclear", "\\x1b[2Jclear"),  # a terminal escape sequence
    ("rtl\u202eevil", "rtl\\u202eevil"),  # reverses the text after it
    ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),  # Unicode's own line breaks
    ("back\\slash", "back\\\\slash"),  # so an escape on screen is one in the data
    ("\U000e0001tag", "\\U000e0001tag"),
])
def test_printable_escapes_whatever_could_break_or_fake_a_line(text, shown):
    assert printable(text) == shown


def test_an_id_with_a_newline_cannot_forge_a_line_on_stderr(db_url, tmp_path):
    evil = {**BASE, "event_id": "evil\nline 2: good: accepted", "amount": "-1"}
    rejects = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(main, ["--db", db_url, "ingest", "--rejects", str(rejects), "-"],
                                input=orjson.dumps(evil) + b"\n" + good(1) + b"\n")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("accepted 1, duplicates 0, rejected 1 in ")
    assert lines[0].startswith("line 1: evil\\nline 2: good: accepted: amount: must be ")
    assert rejects.read_bytes() == orjson.dumps(evil) + b"\n"  # verbatim, one line


# -- ids are namespaced by the channel that delivered them ----------------------------------

RESERVED = ("line 1: stripe:evt_1: event_id: ids starting with 'stripe:' are reserved for "
            "events delivered by that billing source; choose another id")


def test_a_canonical_feed_cannot_take_an_id_of_a_billing_source(db_url):
    rejected: list[str] = []
    lines = [orjson.dumps({**BASE, "event_id": "stripe:evt_1"}),
             *(orjson.dumps({**BASE, "event_id": i, "subscription_id": i})
               for i in ("stripe_evt_2", "Stripe:evt_3", "my-stripe:evt_4", "stripe"))]
    ingest_feed(db_url, lines, on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [RESERVED]
    stripe_line = orjson.dumps(event("evt_1", "customer.subscription.created", subscription(),
                                     T0))
    result = ingest_feed(db_url, [stripe_line], source="stripe")  # the id stays Stripe's
    assert (result.summary.accepted, result.summary.rejected) == (1, 0)
    void = {"event_id": "v1", "type": "event.voided", "voids": "stripe:evt_1"}
    assert ingest_feed(db_url, [orjson.dumps(void)]).summary.accepted == 1  # may name one
    assert {e["event_id"] for e in list_events(db_url)} == {
        "stripe_evt_2", "Stripe:evt_3", "my-stripe:evt_4", "stripe", "stripe:evt_1", "v1"}


def test_only_a_source_writes_its_namespace_and_only_its_own():
    assert channel("canonical").refuses("stripe:evt_1") is not None
    assert channel("canonical").refuses("evt_1") is None
    assert channel("stripe").refuses("stripe:evt_1") is None
    assert channel("stripe").refuses("evt_1") == "event_id: stripe ids start with 'stripe:'"


# -- sizes fit the source: a large Stripe event is recorded, a canonical line stays small ---

def largest_stripe_event() -> bytes:
    """The largest event Stripe can send, built from its documented limits: a subscription
    of 20 items (the most it allows) with full metadata (50 keys of 40 characters, values
    of 500) on itself and on each item, price and plan, updated, with the previous items
    and metadata in previous_attributes; indented, as Stripe sends it."""
    metadata = {f"{k:040d}": "v" * 500 for k in range(50)}
    items = [stripe.item(LATEST, {**stripe.price(LATEST, f"price_{n}", 100 + n),
                                  "metadata": metadata}) for n in range(20)]
    sub = {**stripe.subscription(LATEST, items=items), "metadata": metadata}
    for item in sub["items"]["data"]:
        item["metadata"] = metadata
        if "plan" in item:
            item["plan"]["metadata"] = metadata
    return orjson.dumps(event("evt_big", "customer.subscription.updated", sub, T0,
                              previous={"items": sub["items"], "metadata": metadata}),
                        option=orjson.OPT_INDENT_2)


def test_the_largest_stripe_event_is_recorded(db_url):
    body = largest_stripe_event()
    assert len(body) > 3 << 20
    result = ingest_feed(db_url, [b"[" + body + b"]"], source="stripe")  # an export
    assert result.summary.accepted == 1
    [stored] = list_events(db_url)
    assert stored["payload"]["stripe_event"] == {
        k: v for k, v in orjson.loads(body).items() if k != "pending_webhooks"}


def test_a_stripe_event_over_4_mib_is_rejected_in_one_line(sqlite_url):
    line = orjson.dumps(event("evt_huge", "customer.subscription.created",
                              {**subscription(), "note": "x" * (4 << 20)}, T0))
    rejected: list[str] = []
    ingest_feed(sqlite_url, [line], source="stripe", on_reject=lambda r: rejected.append(str(r)))
    assert rejected == [f"line 1: stripe:evt_huge: Stripe event larger than 4 MiB ({len(line)} "
                        "bytes)"]


def test_a_held_stripe_record_with_a_newline_in_its_id_is_reported_on_one_line(db_url):
    record = orjson.dumps({"id": "evt_x\nline 2: stripe:evt_y: accepted", "object": "thing"})
    result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"],
                                input=record + b"\n")
    lines = result.stderr.splitlines()
    assert lines[0] == ("line 1: stripe:evt_x\\nline 2: stripe:evt_y: accepted: held: neither a "
                        "Stripe Event nor a Subscription object")
    assert len(lines) == 2  # and the summary
