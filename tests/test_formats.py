"""Every command speaks JSON to tools: the action commands' outcomes too."""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from contextlib import redirect_stdout

import orjson
from click.testing import CliRunner

from cli import main
from commands.events import COLUMNS
from services.events import list_events
from services.ingest import ingest_feed
from tests.feeds import jsonl, started


def run_json(db_url: str, *args: str, input: bytes | None = None) -> dict:
    result = CliRunner().invoke(main, ["--db", db_url, *args, "--format", "json"], input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_init_ingest_replay_and_verify_report_json(sqlite_url):
    assert run_json(sqlite_url, "init", "--currency", "usd")["currency"] == "USD"
    feed = jsonl(started("e1", "s1", "c1", "2024-01-01T00:00:00Z"))
    outcome = run_json(sqlite_url, "ingest", "-", input=feed)
    assert (outcome["accepted"], outcome["duplicates"], outcome["rejected"]) == (1, 0, 0)
    assert run_json(sqlite_url, "replay") | {"seconds": 0} == {
        "events": 2, "customers": 1, "seconds": 0}  # the ledger's settings event, then e1
    verified = run_json(sqlite_url, "verify")
    assert (verified["ok"], verified["events"], verified["problem"]) == (True, 2, None)


def test_every_command_that_answers_has_a_format_option():
    """Except those whose output is not a report: a server, a chart (a PNG), the demo, a
    key and a checkpoint (a signed note, whose format is fixed)."""
    without = {name for name, command in main.every_command().items()
               if not any(p.name == "fmt" for p in command.params)
               and not hasattr(command, "commands")}
    assert without == {"serve", "chart", "demo", "keygen", "checkpoint"}


# -- `events` streams: the same bytes as rendering the whole list, in a page's memory -------

def whole_json(rows: list) -> bytes:
    """How `events --format json` rendered before it streamed: the whole list at once."""
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n"


def whole_csv(rows: list) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else orjson.dumps(row[c], option=orjson.OPT_SORT_KEYS)
                         .decode() if isinstance(row[c], dict) else str(row[c]) for c in COLUMNS])
    return out.getvalue()


def events_output(db_url: str, fmt: str) -> bytes:
    result = CliRunner().invoke(main, ["--db", db_url, "events", "--format", fmt])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def test_events_streamed_are_byte_identical_to_the_whole_list(db_url):
    assert events_output(db_url, "json") == b"[]\n"
    feed = jsonl(started("e1", "s1", "c1", "2024-01-01T00:00:00Z", note="caf\u00e9 \"q\"\n",
                         nested={"a": [1, {"b": None}], "z": []}),
                 started("e2", "s2", "c2", "2024-02-01T00:00:00+01:00"),
                 {"event_id": "v1", "type": "event.voided", "voids": "e2", "reason": "x,y"})
    assert CliRunner().invoke(main, ["--db", db_url, "ingest", "-"], input=feed).exit_code == 0
    rows = list_events(db_url)
    assert len(rows) == 3
    assert events_output(db_url, "json") == whole_json(rows)
    assert events_output(db_url, "csv").decode() == whole_csv(rows)


def test_events_of_a_whole_ledger_take_a_page_of_memory_not_the_ledger(sqlite_url):
    def feed(first: int) -> list[bytes]:
        return [orjson.dumps(started(f"e{n}", f"s{n}", f"c{n}", "2024-01-01T00:00:00Z"))
                for n in range(first, first + 10_000)]

    def peak(*args: str) -> int:
        with open(os.devnull, "w") as sink, redirect_stdout(sink):  # the output kept nowhere
            tracemalloc.start()
            main(["--db", sqlite_url, "events", "--format", "json", *args],
                 standalone_mode=False)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        return top

    ingest_feed(sqlite_url, feed(0))
    half = list_events(sqlite_url)[-1]["recorded_at"]
    ingest_feed(sqlite_url, feed(10_000))
    small, large = peak("--known-at", half), peak()  # pages of 5,000 rows: two at a time
    assert large < 1.2 * small, (small, large)  # twice the events, not twice the memory
