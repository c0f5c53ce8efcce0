"""Hostile input: every line is rejected with a one-line reason or stored exactly as given;
never a traceback, a hang or a partial write. Fuzzed with hypothesis, plus worked cases on
both stores."""

from __future__ import annotations

import json
import tempfile

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.events import list_events
from services.ingest import ingest_feed
from services.verify import verify_ledger
from tests.feeds import started

BASE = started("e", "s", "c", "2024-01-01T00:00:00Z")

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
