"""`export mrr`: one row per customer and month whose sums by month and movement are
`movements` and the reference's movements, in CSV and in Parquet, on both stores; a
hand-worked example for the columns."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from fractions import Fraction

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from bench.generate import generate
from cli import main
from projections import reference
from services.errors import LedgerError
from services.export import export_mrr
from services.ingest import ingest_feed
from services.ledger import open_ledger
from tests.feeds import cancelled, changed, jsonl, started, stored_reference
from tests.strategies import feeds

SIGN = {"new": 1, "expansion": 1, "reactivation": 1, "contraction": -1, "churn": -1}


def export(db_url: str, out, *args: str) -> list[dict[str, str]]:
    result = CliRunner().invoke(main, ["--db", db_url, "export", "mrr", "--start", args[0],
                                       "--end", args[1], "--out", str(out), *args[2:]])
    assert result.exit_code == 0, result.output
    if out.suffix == ".parquet":
        return [{k: str(v) for k, v in row.items()} for row in pq.read_table(out).to_pylist()]
    with out.open(newline="") as stream:
        return list(csv.DictReader(stream))


def sums(rows: list[dict[str, str]]) -> dict[tuple[str, str], Fraction]:
    """Per (month, movement), the MRR moved, as `movements` reports it (all positive): at
    constant currency, without what the exchange rates moved (contract v2)."""
    out: dict[tuple[str, str], Fraction] = {}
    for row in rows:
        if row["movement"]:
            key = (row["month"], row["movement"])
            out[key] = out.get(key, Fraction(0)) + SIGN[row["movement"]] * (Fraction(
                row["mrr_change_exact"]) - Fraction(row["fx_exact"]))
    return out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_summed_by_month_and_movement_are_movements(db_url, tmp_path, suffix):
    ingest_feed(db_url, jsonl(*generate(customers=150, seed=30)).splitlines())
    rows = export(db_url, tmp_path / f"mrr{suffix}", "2023-01", "2024-12")
    got = sums(rows)
    result = CliRunner().invoke(main, ["--db", db_url, "movements", "--start", "2023-01",
                                       "--end", "2024-12", "--format", "json"])
    movements = json.loads(result.stdout)["months"]
    with open_ledger(db_url) as app:
        ref = stored_reference(app).movements("2023-01", "2024-12")
    assert len(movements) == len(ref) == 24
    for command, plain in zip(movements, ref, strict=True):
        for kind in SIGN:
            key = (command["month"], kind)
            assert got.get(key, Fraction(0)) == Fraction(command[f"{kind}_exact"]) \
                == plain[kind], key
    # and each row's MRR is the month's MRR of that customer: months sum to `mrr`
    for month in ("2023-06", "2024-12"):
        total = sum(Fraction(r["mrr_exact"]) for r in rows if r["month"] == month)
        day = "2023-06-30" if month == "2023-06" else "2024-12-31"
        result = CliRunner().invoke(main, ["--db", db_url, "mrr", "--at", day,
                                           "--format", "json"])
        assert total == Fraction(json.loads(result.stdout)["mrr_exact"])


def test_a_hand_worked_customer(sqlite_url, tmp_path):
    """w: weekly 10.00 from 2024-01-03 = 10 x 52/12 = 130/3 a month (a repeating decimal,
    exact as a fraction); region EU, then US from March. It leaves in April and comes
    back in June at 50.00 a month."""
    customer = {"event_id": "w0", "type": "customer.updated", "customer_id": "w",
                "effective_at": "2024-01-01T00:00:00Z", "attributes": {"region": "EU"}}
    moved = {**customer, "event_id": "w9", "effective_at": "2024-03-10T00:00:00Z",
             "attributes": {"region": "US"}}
    ingest_feed(sqlite_url, jsonl(
        customer, started("w1", "sw", "w", "2024-01-03T00:00:00Z", amount="10.00",
                          interval="week"),
        moved, cancelled("w2", "sw", "w", "2024-04-15T00:00:00Z"),
        started("w3", "sw2", "w", "2024-06-02T00:00:00Z", amount="50.00"),
        changed("w4", "sw2", "w", "2024-07-01T00:00:00Z", amount="40.00"),
    ).splitlines())
    rows = export(sqlite_url, tmp_path / "w.csv", "2024-01", "2024-07", "--cohort-grain",
                  "quarter")
    assert [(r["month"], r["mrr"], r["mrr_exact"], r["mrr_change_exact"], r["movement"],
             r["attr_region"]) for r in rows] == [
        ("2024-01", "43.33", "130/3", "130/3", "new", "EU"),
        ("2024-02", "43.33", "130/3", "0", "", "EU"),
        ("2024-03", "43.33", "130/3", "0", "", "US"),
        ("2024-04", "0.00", "0", "-130/3", "churn", "US"),
        ("2024-06", "50.00", "50", "50", "reactivation", "US"),
        ("2024-07", "40.00", "40", "-10", "contraction", "US"),
    ]
    assert {(r["first_paid_month"], r["cohort"]) for r in rows} == {("2024-01", "2024-Q1")}
    manifest = json.loads((tmp_path / "w.csv.manifest.json").read_text())
    assert manifest["rows"] == 6 and manifest["reporting_currency"] == "USD"
    assert len(manifest["ledger_head"]["chain_sha256"]) == 64


def test_parquet_carries_the_manifest_and_exact_decimals(sqlite_url, tmp_path):
    ingest_feed(sqlite_url, jsonl(
        started("a1", "sa", "a", "2024-01-03T00:00:00Z", amount="12.345", interval="month"),
    ).splitlines())
    out = tmp_path / "a.parquet"
    export(sqlite_url, out, "2024-01", "2024-02")
    table = pq.read_table(out)
    manifest = json.loads(table.schema.metadata[b"revledger.manifest"])
    assert manifest["ledger_head"]["position"] >= 1 and manifest["start"] == "2024-01"
    assert [(str(r["mrr"]), r["mrr_exact"]) for r in table.to_pylist()] == [
        ("12.34", "12.345"), ("12.34", "12.345")]  # half-even to cents for display only


@pytest.mark.parametrize("name", ["x.csv", "x.parquet"])
def test_an_unwritable_path_is_one_line(sqlite_url, tmp_path, name):
    out = tmp_path / "missing" / name
    ingest_feed(sqlite_url, jsonl(started("e1", "s1", "c1", "2024-01-10T00:00:00Z")).splitlines())
    result = CliRunner().invoke(main, ["--db", sqlite_url, "export", "mrr", "--start",
                                       "2024-01", "--end", "2024-02", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == f"revledger: cannot write {out}: No such file or directory\n"


PROPERTY = settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _check_against_the_reference(url: str, drawn) -> None:
    """Every row is the reference's customer at that month: MRR at the month's end and the
    month before, attributes at the month's end; a row exactly when either MRR is > 0;
    and the rows summed by month and movement are the reference's movements."""
    for ingest in drawn.ingests:
        assert ingest_feed(url, jsonl(*ingest).splitlines()).summary.rejected == 0
    with open_ledger(url) as app:
        ref = stored_reference(app)
    try:
        plain_moves = ref.movements("2023-10", "2025-03")
    except reference.NoRate:  # a month needs a rate the ledger lacks: the table fails
        with pytest.raises(LedgerError, match=r"^no exchange rate "):
            list(export_mrr(url, date(2023, 10, 1), date(2025, 3, 1)).months)
        return
    table = export_mrr(url, date(2023, 10, 1), date(2025, 3, 1))
    rows = [{c: columns[c][i] for c in table.columns}
            for columns in table.months for i in range(len(columns["month"]))]
    months = reference.month_range("2023-10", "2025-03")
    expected = set()
    for customer, history in ref.histories.items():
        for month in months:
            first = date.fromisoformat(month + "-01")
            before = reference.last_instant(first - timedelta(days=1))
            end = reference.last_instant(reference.month_last_day(month))
            p = ref.value(history.mrr_at(before), before)
            q = ref.value(history.mrr_at(end), end)
            if p > 0 or q > 0:
                expected.add((month, customer, p, q, tuple(sorted(history.attributes_at(
                    reference.last_instant(reference.month_last_day(month))).items()))))
    keys = sorted(k.removeprefix("attr_") for k in table.columns if k.startswith("attr_"))
    got = {(r["month"], r["customer_id"], Fraction(r["previous_mrr_exact"]),
            Fraction(r["mrr_exact"]),
            tuple((k, r[f"attr_{k}"]) for k in keys if r[f"attr_{k}"] != "")) for r in rows}
    assert got == expected
    totals = sums(rows)
    for plain in plain_moves:
        for kind in SIGN:
            assert totals.get((plain["month"], kind), Fraction(0)) == plain[kind]


@pytest.mark.parametrize("fresh_db", ["sqlite"], indirect=True)
@PROPERTY
@given(drawn=feeds())
def test_every_row_is_the_reference_on_sqlite(fresh_db, drawn):
    _check_against_the_reference(fresh_db(), drawn)


@pytest.mark.parametrize("fresh_db", ["postgresql"], indirect=True)
@settings(PROPERTY, max_examples=max(5, settings.default.max_examples // 5))
@given(drawn=feeds())
def test_every_row_is_the_reference_on_postgresql(fresh_db, drawn):
    _check_against_the_reference(fresh_db(), drawn)


def test_an_empty_ledger_exports_the_header_and_a_manifest_of_nothing(sqlite_url, tmp_path):
    """Reading writes nothing: the ledger is not even opened (no settings event)."""
    out = tmp_path / "empty.csv"
    assert export(sqlite_url, out, "2024-01", "2024-03") == []
    assert out.read_text().startswith("month,customer_id,mrr,mrr_exact,")
    manifest = json.loads((tmp_path / "empty.csv.manifest.json").read_text())
    assert (manifest["ledger_head"], manifest["rows"], manifest["reporting_currency"]) == (
        None, 0, "USD")
