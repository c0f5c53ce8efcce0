"""`revledger report`: the worked example's figures, the NRR bands and the warnings."""

from __future__ import annotations

import csv
import io
import json
import re
from fractions import Fraction

import pytest
from click.testing import CliRunner

from cli import main
from services.analysis import band
from services.ingest import ingest_feed
from tests.feeds import cancelled, changed, jsonl, started
from tests.test_cohorts import FEED


def report(db_url: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--db", db_url, "report", *args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_worked_example(db_url):
    ingest_feed(db_url, jsonl(*FEED).splitlines())
    r = report(db_url, "--start", "2024-01-31", "--end", "2024-03-31")
    assert (r["mrr_at_start"], r["customers_at_start"], r["mrr_at_end"],
            r["customers_at_end"]) == ("300.00", 2, "300.00", 2)
    assert (r["starting_mrr"], r["ending_mrr"]) == ("300.00", "200.00")  # a and b
    assert (r["nrr_exact"], r["grr_exact"], r["logo_churn_exact"]) == ("2/3", "2/3", "1/2")
    assert r["nrr_band"] == "leaky bucket (< 100%)"
    assert {k: r["movements"][k] for k in ("new", "expansion", "churn", "contraction")} == {
        "new": "50.00", "expansion": "100.00", "churn": "150.00", "contraction": "0.00"}
    assert r["warnings"] == ["logo churn above 10%: 1 of 2 customers left"]
    assert (r["expansion_from_quantity"], r["expansion_from_price_or_plan"]) == ("0.00",
                                                                                "0.00")


def test_expansion_masking_churn_is_called_out(db_url):
    ingest_feed(db_url, jsonl(
        started("x1", "sx", "x", "2024-01-01T00:00:00Z", amount="100.00"),
        started("y1", "sy", "y", "2024-01-01T00:00:00Z", amount="100.00"),
        cancelled("x2", "sx", "x", "2024-06-01T00:00:00Z"),
        changed("y2", "sy", "y", "2024-06-01T00:00:00Z", amount="250.00"),
    ).splitlines())
    r = report(db_url, "--start", "2024-01-31", "--end", "2024-12-31")
    assert (r["nrr_exact"], r["grr_exact"], r["nrr_band"]) == ("5/4", "1/2",
                                                               "excellent (120-130%)")
    assert r["warnings"][0] == ("expansion masks churn: GRR 50.0% is below 90% while NRR "
                                "is 125.0%")


@pytest.mark.parametrize(("nrr", "expected"), [
    (Fraction(131, 100), "best-in-class (> 130%)"), (Fraction(13, 10), "excellent (120-130%)"),
    (Fraction(12, 10), "excellent (120-130%)"), (Fraction(119, 100), "good (110-120%)"),
    (Fraction(1), "acceptable (100-110%)"), (Fraction(99, 100), "leaky bucket (< 100%)"),
    (None, None),
])
def test_nrr_bands(nrr, expected):
    assert band(nrr) == expected


def test_expansion_is_split_into_quantity_and_price_or_plan(db_url):
    """p: 10 seats at 10 -> 12 seats at 12: quantity (12 - 10) x 10 = 20, price 12 x 2 = 24.
    q: adds a second subscription of 30: price or plan 30. r: shrinks, not split."""
    ingest_feed(db_url, jsonl(
        started("p1", "sp", "p", "2024-01-01T00:00:00Z", amount="10.00", quantity=10),
        started("q1", "sq", "q", "2024-01-01T00:00:00Z", amount="50.00"),
        started("r1", "sr", "r", "2024-01-01T00:00:00Z", amount="80.00"),
        changed("p2", "sp", "p", "2024-04-01T00:00:00Z", amount="12.00", quantity=12),
        started("q2", "sq2", "q", "2024-05-01T00:00:00Z", amount="30.00"),
        changed("r2", "sr", "r", "2024-05-01T00:00:00Z", amount="60.00"),
    ).splitlines())
    r = report(db_url, "--start", "2024-01-31", "--end", "2024-12-31")
    assert (r["expansion_exact"], r["expansion_from_quantity_exact"],
            r["expansion_from_price_or_plan_exact"]) == ("74", "20", "54")


NUMBER = re.compile(r"-?\d+(\.\d+)?")
TEXT = {"start", "end", "nrr_band", "warning", "known_at", "ledger_chain_sha256", "tree_root",
        "reporting_currency"}


def test_csv_has_one_plain_value_per_figure_equal_to_the_json(db_url):
    """A spreadsheet reads every cell: numbers as numbers (no `300.00 (2 customers)`, no
    `2/3`, which a spreadsheet takes for a date), the band and warnings as text."""
    ingest_feed(db_url, jsonl(*FEED).splitlines())
    args = ["--start", "2024-01-31", "--end", "2024-03-31"]
    r = report(db_url, *args)
    result = CliRunner().invoke(main, ["--db", db_url, "report", *args, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    for row in rows:
        assert row["figure"] in TEXT or NUMBER.fullmatch(row["value"]), row
    figures = {row["figure"]: row["value"] for row in rows}
    for key in ("mrr_at_start", "customers_at_start", "nrr", "grr", "logo_churn", "churn",
                "contraction", "expansion", "starting_mrr", "ending_mrr", "nrr_band"):
        assert figures[key] == str(r[key]), key
    assert figures["movements_new"] == r["movements"]["new"]
    assert [row["value"] for row in rows if row["figure"] == "warning"] == r["warnings"]
    assert figures["ledger_position"] == str(r["manifest"]["ledger_head"]["position"])


def test_the_table_shows_the_churn_and_contraction_behind_the_nrr(db_url):
    ingest_feed(db_url, jsonl(*FEED).splitlines())
    result = CliRunner().invoke(main, ["--db", db_url, "report", "--start", "2024-01-31",
                                       "--end", "2024-03-31"], env={"COLUMNS": "120"})
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in result.stdout.splitlines() if line.count("│") == 3}
    assert lines["starting MRR (2 customers)"] == "300.00"  # a 100, b 200 at January end
    assert lines["+ expansion"] == "0.00" and lines["- contraction"] == "0.00"
    assert lines["- churn (1 left)"] == "100.00"
    assert lines["= ending MRR (the same customers)"] == "200.00"
