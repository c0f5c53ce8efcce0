"""Every command speaks JSON to tools: the action commands' outcomes too."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
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
    without = {name for name, command in main.commands.items()
               if not any(p.name == "fmt" for p in command.params)
               and not hasattr(command, "commands")}
    assert without == {"serve", "chart", "demo", "keygen", "checkpoint"}
