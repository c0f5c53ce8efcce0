"""The analyst's first hour: periods as a person types them, warnings instead of silent
empty answers, and messages that never print a database password."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli import main
from ledger.settings import redact
from projections.periods import PeriodError, end_day, end_month, start_day, start_month
from services.ingest import ingest_feed
from tests.feeds import jsonl, started


def invoke(*args, code=0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


# -- --start / --end / --at --------------------------------------------------------------------

@pytest.mark.parametrize("text, start, end", [
    ("2024-03-15", date(2024, 3, 15), date(2024, 3, 15)),  # a date is its end, either side
    ("2024-03", date(2024, 2, 29), date(2024, 3, 31)),
    ("2024-Q1", date(2023, 12, 31), date(2024, 3, 31)),
    ("2024-q4", date(2024, 9, 30), date(2024, 12, 31)),
    ("2024", date(2023, 12, 31), date(2024, 12, 31)),
    ("9999", date(9998, 12, 31), date(9999, 12, 31)),
])
def test_a_period_means_its_start_for_start_and_its_end_for_end(text, start, end):
    assert (start_day(text), end_day(text)) == (start, end)


@pytest.mark.parametrize("text, first, last", [
    ("2024-03-15", date(2024, 3, 1), date(2024, 3, 1)),
    ("2024-Q2", date(2024, 4, 1), date(2024, 6, 1)),
    ("2024", date(2024, 1, 1), date(2024, 12, 1)),
])
def test_monthly_commands_take_the_months_a_period_touches(text, first, last):
    assert (start_month(text), end_month(text)) == (first, last)


@pytest.mark.parametrize("text", ["2024-13", "2024-Q5", "24", "2024-02-30", "0000", "0001"])
def test_what_is_no_date_or_period_is_a_usage_error(text):
    with pytest.raises(PeriodError):
        start_day(text)


@given(st.dates(date(1, 2, 1), date(9999, 12, 31)))
def test_a_month_starts_where_the_month_before_ends(day):
    month = f"{day.year:04d}-{day.month:02d}"
    before = day.replace(day=1) - timedelta(days=1)
    assert start_day(month) == end_day(f"{before.year:04d}-{before.month:02d}") == before


def test_every_command_takes_the_same_periods(sqlite_url):
    ingest_feed(sqlite_url, jsonl(started("e1", "s1", "c1", "2024-01-10T00:00:00Z")).splitlines())
    db = ("--db", sqlite_url)
    nrr = json.loads(invoke(*db, "nrr", "--start", "2024-Q1", "--end", "2024",
                            "--format", "json").stdout)
    assert (nrr["start"], nrr["end"]) == ("2023-12-31", "2024-12-31")
    assert json.loads(invoke(*db, "mrr", "--at", "2024-01", "--format", "json").stdout)[
        "date"] == "2024-01-31"
    months = json.loads(invoke(*db, "movements", "--start", "2024-Q1", "--end", "2024-Q1",
                               "--format", "json").stdout)["months"]
    assert [m["month"] for m in months] == ["2024-01", "2024-02", "2024-03"]
    report = json.loads(invoke(*db, "report", "--start", "2024", "--end", "2024",
                               "--format", "json").stdout)
    assert (report["start"], report["end"]) == ("2023-12-31", "2024-12-31")
    cohorts = json.loads(invoke(*db, "cohorts", "--start", "2024", "--end", "2024-Q1",
                                "--format", "json").stdout)
    assert [c["cohort"] for c in cohorts["cohorts"]] == ["2024-01", "2024-02", "2024-03"]
    out = invoke(*db, "nrr", "--start", "2024-Q9", "--end", "2024", code=2)
    assert "not a date or period (YYYY-MM-DD, YYYY-MM, YYYY-Qn or YYYY): '2024-Q9'" in out.output


# -- no silent empty answers ---------------------------------------------------------------------

def test_an_empty_ledger_says_so_naming_the_database_and_the_figures_stay(db_url):
    out = invoke("--db", db_url, "mrr", "--at", "2024-01-31", "--format", "json")
    assert json.loads(out.stdout)["mrr"] == "0.00"
    assert out.stderr.startswith(f"revledger: warning: the ledger {redact(db_url)} holds no "
                                 "events")


def test_the_default_ledger_empty_points_at_the_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working directory is what the default names
    invoke("demo")
    out = invoke("mrr", "--at", "2019-12-31")
    assert "did you mean --db sqlite:///revledger-demo.db?" in out.stderr


def paying_customer_in(url, region):
    """One customer, in `region` from 2024-01-01, paying from 2024-01-10."""
    feed = [{"event_id": "a", "type": "customer.created", "effective_at": "2024-01-01T00:00:00Z",
             "customer_id": "c1", "attributes": {"region": region}},
            started("e1", "s1", "c1", "2024-01-10T00:00:00Z")]
    ingest_feed(url, jsonl(*feed).splitlines())


def test_a_segment_no_customer_ever_had_lists_the_values(db_url):
    paying_customer_in(db_url, "EU")
    out = invoke("--db", db_url, "nrr", "--start", "2024-01", "--end", "2024-06",
                 "--segment", "region=eu")
    assert "revledger: warning: no customer ever had region=eu; region takes: EU" in out.stderr
    out = invoke("--db", db_url, "nrr", "--start", "2024-01", "--end", "2024-06",
                 "--segment", "tier=a")
    assert "no customer ever had the attribute 'tier'; attributes: region" in out.stderr
    assert "warning" not in invoke("--db", db_url, "nrr", "--start", "2024-01", "--end",
                                   "2024-06", "--segment", "region=EU").stderr


def test_known_at_before_the_first_recording_names_it(db_url):
    ingest_feed(db_url, jsonl(started("e1", "s1", "c1", "2024-01-10T00:00:00Z")).splitlines())
    out = invoke("--db", db_url, "mrr", "--at", "2024-01-31", "--known-at", "2001-01-01")
    assert "--known-at 2001-01-01T23:59:59.999999Z is before the first recording (" in out.stderr


# -- passwords -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "postgresql://user:s3cret@127.0.0.1:1/db",
    "postgresql://user:s3cret@host:notaport/db",
    "postgresql://user:s3cret@/db",
    "postgres://user:s%40cret@127.0.0.1:1/db",
    "mysql://user:s3cret@host/db",
    "postgresql://127.0.0.1:1/db?user=alice&password=s3cret",
    "postgresql://alice:s3cret@[::1:1/db",
])
def test_no_message_prints_a_password(url):
    for args in (("init",), ("mrr", "--at", "2024-01-31"), ("import", "csv", "-")):
        result = CliRunner().invoke(main, ["--db", url, *args], input="a,b\n")
        assert "s3cret" not in result.output and "s%40cret" not in result.output
        assert "Traceback" not in result.output


def test_init_masks_the_password_of_the_ledger_it_opened(pg_url):
    user, rest = pg_url.removeprefix("postgresql://").split("@", 1)
    url = f"postgresql://{user.split(':')[0]}:s3cret@{rest}"  # the test server trusts any
    for fmt in ("table", "json"):
        out = invoke("--db", url, "init", "--format", fmt)
        assert "s3cret" not in out.output and ":***@" in out.output


@pytest.mark.parametrize("text, masked", [
    ("postgresql://u:p@h/d", "postgresql://u:***@h/d"),
    ("cannot open postgresql://u:p@ss@h:1/d: refused", "cannot open postgresql://u:***@h:1/d: "
                                                        "refused"),
    ("sqlite:///ledger.db", "sqlite:///ledger.db"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("postgresql://h/d?sslmode=require&PASSWORD=p&user=u",
     "postgresql://h/d?sslmode=require&PASSWORD=***&user=u"),
])
def test_redact(text, masked):
    assert redact(text) == masked


# -- docs ------------------------------------------------------------------------------------------

def test_docs_cite_no_file_outside_the_repository():
    """Users read docs/ and README without the project's working notes beside them: every
    relative link resolves to a file of the repository, and nothing names ../shared."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "shared/contract" not in text and "../shared" not in text, page.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(root) and resolved.exists(), (page.name, target)


def test_a_warning_quoting_data_escapes_its_control_characters(sqlite_url):
    paying_customer_in(sqlite_url, "EU\u001b[2J")
    out = invoke("--db", sqlite_url, "nrr", "--start", "2024-01", "--end", "2024-06",
                 "--segment", "region=US")
    assert "region takes: EU\\x1b[2J" in out.stderr and "\x1b" not in out.stderr


def test_the_readmes_demo_examples_run_as_written(tmp_path, monkeypatch):
    """Every command of the README's block against the demo ledger, as printed there."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("export REVLEDGER_DB=sqlite:///revledger-demo.db\n", 1)[1]
    commands = [shlex.split(line, comments=True) for line in block.split("```", 1)[0].splitlines()
                if line.startswith("revledger ")]
    assert len(commands) >= 10
    monkeypatch.chdir(tmp_path)  # where the demo puts its ledger and the examples write
    invoke("demo")
    for command in commands:
        result = CliRunner().invoke(main, command[1:],
                                    env={"REVLEDGER_DB": "sqlite:///revledger-demo.db"})
        assert result.exit_code == 0, (command, result.output)
        assert "warning" not in result.stderr, (command, result.stderr)
