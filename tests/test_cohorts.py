"""Cohort triangles: a hand-computed case per metric, and every cell equal to
`nrr --cohort` over the same window (both stores)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from click.testing import CliRunner

from bench.generate import generate
from cli import main
from services.ingest import ingest_feed
from tests.feeds import cancelled, changed, jsonl, started

FEED = [
    started("a1", "sa", "a", "2024-01-10T00:00:00Z", amount="100.00"),
    started("b1", "sb", "b", "2024-01-20T00:00:00Z", amount="200.00"),
    started("c1", "sc", "c", "2024-02-05T00:00:00Z", amount="50.00"),
    changed("a2", "sa", "a", "2024-02-15T00:00:00Z", amount="150.00"),
    changed("c2", "sc", "c", "2024-03-01T00:00:00Z", quantity=2),
    cancelled("a3", "sa", "a", "2024-03-20T00:00:00Z"),
]


def json_of(db_url: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--db", db_url, *args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(("metric", "expected"), [
    ("nrr", [["1", "7/6", "2/3"], ["1", "2"], [None]]),
    ("grr", [["1", "1", "2/3"], ["1", "1"], [None]]),
    ("logos", [["1", "1", "1/2"], ["1", "1"], [None]]),
])
def test_a_hand_computed_monthly_triangle(db_url, metric, expected):
    """January: a (100) and b (200); a grows to 150 in February and leaves in March.
    February: c (50) doubles its seats in March. March: nobody new."""
    ingest_feed(db_url, jsonl(*FEED).splitlines())
    report = json_of(db_url, "cohorts", "--start", "2024-01", "--end", "2024-03",
                     "--metric", metric)
    assert [(c["cohort"], c["customers"], c["starting_mrr"]) for c in report["cohorts"]] == [
        ("2024-01", 2, "300.00"), ("2024-02", 1, "50.00"), ("2024-03", 0, "0.00")]
    assert [c["ages_exact"] for c in report["cohorts"]] == expected


@pytest.mark.parametrize("grain", ["month", "quarter"])
def test_every_cell_equals_nrr_of_that_cohort_over_the_same_window(sqlite_url, grain):
    ingest_feed(sqlite_url, jsonl(*generate(customers=300, seed=21)).splitlines())
    report = json_of(sqlite_url, "cohorts", "--start", "2023-07", "--end", "2024-06",
                     "--grain", grain, "--segment", "region=EU")
    labels = [c["cohort"] for c in report["cohorts"]]
    ends = {c["cohort"]: _last_day(c["cohort"]) for c in report["cohorts"]}
    for i, row in enumerate(report["cohorts"]):
        for k, cell in enumerate(row["ages_exact"]):
            figures = json_of(sqlite_url, "nrr", "--start", ends[labels[i]],
                              "--end", ends[labels[i + k]], "--cohort", row["cohort"],
                              "--segment", "region=EU")
            assert cell == figures["nrr_exact"], (row["cohort"], k)
            if k == 0:
                assert row["customers"] == figures["customers"]


def _last_day(label: str) -> str:
    from datetime import date, timedelta

    from projections.periods import parse_period

    return (date.fromisoformat(parse_period(label).end[:10]) - timedelta(days=1)).isoformat()


def test_two_years_of_monthly_cohorts_fit_100_columns(sqlite_url):
    """24 cohorts x 24 ages: no line over 100 characters, no cell wrapped; the ages that do
    not fit continue in a second block, one line per cohort in each; every cell is the
    JSON's figure as a whole percentage."""
    ingest_feed(sqlite_url, jsonl(*generate(customers=300, seed=21)).splitlines())
    args = ["cohorts", "--start", "2023-01", "--end", "2024-12"]
    result = CliRunner().invoke(main, ["--db", sqlite_url, *args], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    blocks = [i for i, line in enumerate(lines) if line.startswith("cohort ")]
    assert len(blocks) == 2
    report = json_of(sqlite_url, *args)
    cells: dict[str, list[str]] = {}
    for start in blocks:
        labels = set()
        for line in lines[start + 1:]:
            if not line or line.startswith("as known at"):
                break
            label, _, _, *values = line.split()
            assert label not in labels
            labels.add(label)
            cells.setdefault(label, []).extend(values)
    assert list(cells) == [f"{'JanFebMarAprMayJunJulAugSepOctNovDec'[m * 3:m * 3 + 3]}'{y}"
                           for y in (23, 24) for m in range(12)]
    for row, values in zip(report["cohorts"], cells.values(), strict=True):
        assert values == ["-" if v is None else f"{round(Fraction(v) * 100)}%"
                          for v in row["ages_exact"]]
