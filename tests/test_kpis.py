"""ARR, customers, ARPA, logo churn rate and quick ratio (`revledger metrics`), and NRR by
segment (`nrr --by KEY`): a worked example by hand, then every drawn feed against the
reference (projections/reference/), and `--by` row by row against `--segment`."""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from functools import partial

import pytest
from click.testing import CliRunner
from hypothesis import given, settings

from cli import main
from services.analysis import summary_report
from services.ingest import ingest_feed
from services.metrics import metrics_report, nrr_by_report, nrr_report
from tests.feeds import cancelled, changed, jsonl, started
from tests.strategies import feeds
from tests.test_contract import PROPERTY, RATIOS, both, events_of

# A pays 100 from Jan 10 and 150 from Feb 10 (EU); B pays 50 from Jan 15 to Mar 5 (US);
# C pays 30 from Feb 20 (EU).
EXAMPLE = [
    {"event_id": "a", "type": "customer.created", "effective_at": "2024-01-01T00:00:00Z",
     "customer_id": "A", "attributes": {"region": "EU"}},
    {"event_id": "b", "type": "customer.created", "effective_at": "2024-01-01T00:00:00Z",
     "customer_id": "B", "attributes": {"region": "US"}},
    {"event_id": "c", "type": "customer.created", "effective_at": "2024-01-01T00:00:00Z",
     "customer_id": "C", "attributes": {"region": "EU"}},
    started("e1", "sa", "A", "2024-01-10T00:00:00Z", "100.00"),
    started("e2", "sb", "B", "2024-01-15T00:00:00Z", "50.00"),
    changed("e3", "sa", "A", "2024-02-10T00:00:00Z", amount="150.00"),
    started("e4", "sc", "C", "2024-02-20T00:00:00Z", "30.00"),
    cancelled("e5", "sb", "B", "2024-03-05T00:00:00Z"),
]


@pytest.fixture
def example(db_url):
    assert ingest_feed(db_url, jsonl(*EXAMPLE).splitlines()).summary.accepted == len(EXAMPLE)
    return db_url


def cli_json(url, *args):
    result = CliRunner().invoke(main, ["--db", url, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_worked_example_at_a_date(example):
    # Jan 31: A 100 + B 50 = 150 over 2 customers; Q1's end: A 150 + C 30 = 180 over 2
    jan = cli_json(example, "metrics", "--at", "2024-01-31")
    assert (jan["mrr"], jan["arr"], jan["customers"], jan["arpa"]) == (
        "150.00", "1800.00", 2, "75.00")
    q1 = cli_json(example, "metrics", "--at", "2024-Q1")
    assert (q1["date"], q1["arr"], q1["arpa"]) == ("2024-03-31", "2160.00", "90.00")


def test_worked_example_over_a_period(example):
    # Cohort at Jan 31: A and B; B pays nothing at Mar 31: logo churn 1/2. Movements of
    # Feb and Mar: A +50 expansion, C 30 new; B 50 churn: quick ratio 80/50.
    for start in ("2024-01-31", "2024-02"):  # a month given to --start means its start
        r = cli_json(example, "metrics", "--start", start, "--end", "2024-03")
        assert (r["start"], r["end"]) == ("2024-01-31", "2024-03-31")
        assert (r["logo_churn_rate_exact"], r["churned_customers"], r["cohort_customers"]) \
            == ("1/2", 1, 2)
        assert (r["gained"], r["lost"], r["quick_ratio_exact"]) == ("80.00", "50.00", "8/5")
        assert (r["arr_at_start"], r["arr"], r["arpa_at_start"]) == ("1800.00", "2160.00",
                                                                     "75.00")
    report = summary_report(example, date(2024, 1, 31), date(2024, 3, 31))
    assert (report["quick_ratio_exact"], report["logo_churn_exact"], report["arr_at_end"]) == \
        ("8/5", "1/2", "2160.00")


def test_worked_example_by_region(example):
    rows = cli_json(example, "nrr", "--start", "2024-01-31", "--end", "2024-03-31",
                    "--by", "region")["rows"]
    assert [(r["value"], r["nrr_exact"], r["grr_exact"]) for r in rows] == [
        ("EU", "3/2", "1"), ("US", "0", "0")]


def test_nothing_lost_and_nobody_paying_are_null(example):
    r = cli_json(example, "metrics", "--start", "2023-12-31", "--end", "2024-01-31")
    assert (r["quick_ratio"], r["logo_churn_rate"], r["arpa_at_start"]) == (None, None, None)


def test_metrics_wants_a_date_or_a_period(example):
    result = CliRunner().invoke(main, ["--db", example, "metrics", "--start", "2024-01"])
    assert result.exit_code == 2 and "give --at DATE, or --start and --end" in result.output


# -- every drawn feed -------------------------------------------------------------------------

PERIODS = ((date(2023, 12, 31), date(2024, 12, 31)), (date(2024, 1, 31), date(2024, 2, 29)))
DAYS = (date(2023, 12, 31), date(2024, 6, 30), date(2025, 2, 28))
MONEY = ("starting_mrr", "ending_mrr", "expansion", "contraction", "churn", "fx_impact")


def exact(value):
    return None if value is None else Fraction(value)


def check(url, drawn):
    for ingest in drawn.ingests:
        assert ingest_feed(url, jsonl(*ingest).splitlines()).summary.rejected == 0
    from projections import reference

    ref = reference.Reference(events_of(drawn, len(drawn.ingests)))
    for day in DAYS:
        if pair := both(partial(metrics_report, url, None, day),
                        partial(lambda d: (ref.arr(d), ref.arpa(d), ref.mrr(d)[1]), day)):
            r, expected = pair
            assert (exact(r["arr_exact"]), exact(r["arpa_exact"]), r["customers"]) == expected
    for start, end in PERIODS:
        pair = both(partial(metrics_report, url, start, end),
                    partial(lambda s, e: (ref.logo_churn_rate(s, e), ref.quick_ratio(s, e)),
                            start, end))
        if pair:
            r, (churn_rate, quick) = pair
            assert exact(r["logo_churn_rate_exact"]) == churn_rate
            assert exact(r["quick_ratio_exact"]) == quick
        pair = both(partial(nrr_by_report, url, start, end, "region"),
                    partial(ref.nrr_by, start, end, "region"))
        if not pair:
            continue
        by, expected = pair
        assert {row["value"] for row in by["rows"]} == set(expected)
        for row in by["rows"]:
            fields = {k: exact(row[f"{k}_exact"]) for k in (*MONEY, *RATIOS)}
            assert {**fields, "customers": row["customers"]} == expected[row["value"]]
            if row["value"] is not None:  # each row is what --segment answers
                alone = nrr_report(url, start, end, None, {"region": row["value"]})
                assert {k: v for k, v in alone.items() if k not in (
                    "start", "end", "cohort", "segment", "manifest", "reporting_currency")} == {
                    k: v for k, v in row.items() if k != "value"}


@pytest.mark.parametrize("fresh_db", ["sqlite"], indirect=True)
@settings(PROPERTY, max_examples=max(5, settings.default.max_examples // 2))
@given(drawn=feeds())
def test_metrics_and_nrr_by_equal_the_reference_on_sqlite(fresh_db, drawn):
    check(fresh_db(), drawn)


@pytest.mark.parametrize("fresh_db", ["postgresql"], indirect=True)
@settings(PROPERTY, max_examples=max(3, settings.default.max_examples // 10))
@given(drawn=feeds())
def test_metrics_and_nrr_by_equal_the_reference_on_postgresql(fresh_db, drawn):
    check(fresh_db(), drawn)


def test_nrr_by_as_csv_has_a_row_per_value_and_its_columns_even_when_empty(example):
    def csv_of(*args):
        result = CliRunner().invoke(main, ["--db", example, "nrr", *args, "--by", "region",
                                           "--format", "csv"])
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    rows = csv_of("--start", "2024-01-31", "--end", "2024-03-31")
    assert rows[0].startswith("region,customers,starting_mrr,starting_mrr_exact,")
    assert [r.split(",")[0] for r in rows[1:]] == ["EU", "US"]
    assert csv_of("--start", "2020", "--end", "2020") == rows[:1]  # nobody paid then
