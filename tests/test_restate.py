"""The restatement bridge: as originally reported + adjustments = as restated, exactly,
with each adjustment naming the events recorded in between that moved it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from fractions import Fraction
from functools import partial

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from cli import main
from services.errors import LedgerError
from services.ingest import ingest_feed
from services.metrics import movements_report, mrr_report, nrr_report
from services.restate import restate
from tests.feeds import cancelled, jsonl, started, voided
from tests.strategies import feeds

BEFORE = [
    started("a1", "sa", "a", "2024-01-01T00:00:00Z", amount="100.00"),
    started("b1", "sb", "b", "2024-01-01T00:00:00Z", amount="50.00"),
    cancelled("b2", "sb", "b", "2024-03-01T00:00:00Z"),
    started("d1", "sd", "d", "2024-01-01T00:00:00Z", amount="10.00"),
]
LATER = [
    # backdated: b had a second subscription all along, so its churn was a contraction
    started("b3", "sb2", "b", "2024-02-15T00:00:00Z", amount="20.00"),
    # a late arrival: c paid from January, and its event came only now
    started("c1", "sc", "c", "2024-01-01T00:00:00Z", amount="30.00"),
    # a void: a's start was recorded in error
    voided("v1", "a1"),
    # after the period: recorded in between, but moves nothing in it
    started("d2", "sd2", "d", "2024-09-01T00:00:00Z", amount="5.00"),
]
NRR = {"start": date(2024, 1, 31), "end": date(2024, 6, 30)}


def head_instant(url: str) -> str:
    events = json.loads(CliRunner().invoke(main, ["--db", url, "events", "--format",
                                                  "json"]).stdout)
    return events[-1]["recorded_at"]


@pytest.fixture
def restated(db_url):
    ingest_feed(db_url, jsonl(*BEFORE).splitlines())
    t1 = head_instant(db_url)
    ingest_feed(db_url, jsonl(*LATER).splitlines())
    return db_url, t1, restate(db_url, "nrr", NRR, t1)


def adjustment(report, customer):
    (found,) = [a for a in report["adjustments"] if a["customer_id"] == customer]
    return found


def test_as_originally_reported_and_as_restated_are_the_figures_known_then(restated):
    url, t1, report = restated
    assert (report["original"]["nrr_exact"], report["original"]["starting_mrr"],
            report["original"]["churn"]) == ("11/16", "160.00", "50.00")  # (100+10)/160
    assert (report["restated"]["nrr_exact"], report["restated"]["starting_mrr"],
            report["restated"]["contraction"]) == ("2/3", "90.00", "30.00")  # (20+30+10)/90
    then = nrr_report(url, NRR["start"], NRR["end"], known_at=t1)
    assert {k: report["original"][k] for k in report["original"]} == {
        k: then[k] for k in report["original"]}
    assert report["manifests"]["original"] == then["manifest"]


def test_a_backdated_event_reclassifies_churn_as_contraction(restated):
    b = adjustment(restated[2], "b")
    assert b["moved"] == [{"what": "cohort", "before": "churn", "after": "contraction"}]
    assert b["event_ids"] == ["b3"]
    assert {k: b["changes"][k] for k in ("ending_mrr", "contraction", "churn")} == {
        "ending_mrr": "20", "contraction": "30", "churn": "-50"}


def test_a_late_arrival_enters_the_cohort(restated):
    c = adjustment(restated[2], "c")
    assert c["moved"] == [{"what": "cohort", "before": "none", "after": "flat"}]
    assert c["event_ids"] == ["c1"]
    assert (c["changes"]["customers"], c["changes"]["starting_mrr"]) == (1, "30")


def test_a_void_takes_a_customer_out_and_names_the_void(restated):
    a = adjustment(restated[2], "a")
    assert a["moved"] == [{"what": "cohort", "before": "flat", "after": "none"}]
    assert a["event_ids"] == ["v1"]
    assert a["changes"]["starting_mrr"] == a["changes"]["ending_mrr"] == "-100"


def test_an_event_outside_the_period_moves_nothing(restated):
    assert "d" not in {a["customer_id"] for a in restated[2]["adjustments"]}


def test_the_ratios_adjustments_add_up_to_the_restated_ratio(restated):
    report = restated[2]
    for ratio in ("nrr", "grr"):
        total = Fraction(report["original"][f"{ratio}_exact"]) + sum(
            Fraction(a["changes"].get(ratio, "0")) for a in report["adjustments"])
        assert total == Fraction(report["restated"][f"{ratio}_exact"])


def test_movements_and_mrr_bridge_cell_by_cell(restated):
    url, t1, _ = restated
    report = restate(url, "movements", {"first": date(2024, 1, 1),
                                        "last": date(2024, 4, 1)}, t1)
    b = adjustment(report, "b")
    assert [(m["what"], m["before"], m["after"]) for m in b["moved"]] == [
        ("2024-02", "none", "expansion"), ("2024-03", "churn", "contraction")]
    assert b["changes"] == {"2024-02.expansion": "20", "2024-03.contraction": "50",
                            "2024-03.churn": "-50"}
    mrr = restate(url, "mrr", {"at": date(2024, 4, 30)}, t1)
    assert (mrr["original"]["mrr"], mrr["restated"]["mrr"]) == ("110.00", "60.00")
    assert [a["customer_id"] for a in mrr["adjustments"]] == ["b", "c", "a"]


def test_a_rate_recorded_late_restates_the_customers_it_revalues_and_is_named(db_url):
    """Contract v2: a EUR customer pays 100 EUR from January; EUR->USD is 1.10 from
    January, and a rate of 1.20 effective in June is recorded after the first report. Its
    MRR at the end of June goes from 110 to 120 USD; the adjustment names the rate (it
    belongs to no customer), and the USD customer, untouched, has none. For NRR the
    customer stays flat at constant currency: the 10 is `fx_impact`."""
    rate = {"event_id": "r2", "type": "fx.rate", "effective_at": "2024-06-01T00:00:00Z",
            "base": "EUR", "quote": "USD", "rate": "1.20"}
    ingest_feed(db_url, jsonl(
        started("e1", "s1", "eu", "2024-01-01T00:00:00Z", amount="100.00", currency="EUR"),
        started("u1", "s2", "us", "2024-01-01T00:00:00Z", amount="50.00"),
        {**rate, "event_id": "r1", "effective_at": "2024-01-01T00:00:00Z", "rate": "1.10"},
    ).splitlines())
    t1 = head_instant(db_url)
    ingest_feed(db_url, jsonl(rate).splitlines())
    mrr = restate(db_url, "mrr", {"at": date(2024, 6, 30)}, t1)
    assert (mrr["original"]["mrr"], mrr["restated"]["mrr"]) == ("160.00", "170.00")
    assert mrr["reporting_currency"] == "USD"
    assert [(a["customer_id"], a["event_ids"], a["changes"]) for a in mrr["adjustments"]] == [
        ("eu", ["r2"], {"mrr": "10"})]
    nrr = restate(db_url, "nrr", {"start": date(2024, 1, 31), "end": date(2024, 6, 30)}, t1)
    (eu,) = nrr["adjustments"]
    assert eu["moved"] == [] and eu["event_ids"] == ["r2"]
    assert eu["changes"]["fx_impact"] == "10" and eu["changes"]["ending_mrr"] == "10"
    assert nrr["restated"]["nrr_constant_currency_exact"] == "1"


def test_the_command_prints_json_csv_and_a_table(restated):
    url, t1, report = restated
    args = ["--db", url, "restate", "nrr", "--start", "2024-01-31", "--end", "2024-06-30",
            "--from", t1]
    out = CliRunner().invoke(main, [*args, "--format", "json"])
    assert json.loads(out.stdout)["adjustments"] == report["adjustments"]
    csv = CliRunner().invoke(main, [*args, "--format", "csv"]).stdout.splitlines()
    assert csv[0].startswith("line,customer_id,moved,event_ids,customers,starting_mrr")
    assert csv[2].startswith("adjustment,c,cohort: none -> flat,c1,1,30,")
    assert len(csv) == 1 + 1 + 3 + 1
    table = CliRunner().invoke(main, [*args, "--to", t1])  # nothing in between
    assert table.exit_code == 0 and "restated" in table.stdout


# -- the identity, for any feed, at every pair of ingest instants -------------------------


def exact(report: dict, name: str) -> Fraction | None:
    value = report.get(f"{name}_exact", report.get(name))
    return None if value is None else Fraction(value)


def assert_bridge_holds(report: dict, original: dict, restated: dict, names: list[str]):
    for name in names:
        assert exact(report["original"], name) == exact(original, name), name
        assert exact(report["restated"], name) == exact(restated, name), name
        if exact(original, name) is None or exact(restated, name) is None:
            continue
        total = exact(original, name) + sum(
            Fraction(a["changes"].get(name, 0)) for a in report["adjustments"])
        assert total == exact(restated, name), name


@pytest.mark.parametrize("fresh_db", ["sqlite", "postgresql"], indirect=True)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # a fresh ledger each
@given(feed=feeds(max_customers=3, max_events=12, max_ingests=3))
def test_the_bridge_holds_exactly_between_every_pair_of_ingests(fresh_db, feed):
    url = fresh_db()
    instants, recorded = [], {}
    for batch in feed.ingests:
        ingest_feed(url, jsonl(*batch).splitlines())
        events = json.loads(CliRunner().invoke(main, ["--db", url, "events", "--format",
                                                      "json"]).stdout)
        recorded = {e["event_id"]: e for e in events}
        instants.append(events[-1]["recorded_at"] if events else None)
    instants = [t for t in instants if t]
    start, end = date(2023, 12, 31), date(2024, 12, 31)
    first, last, day = date(2024, 1, 1), date(2024, 3, 1), date(2024, 6, 30)
    for i, t1 in enumerate(instants):
        for t2 in instants[i:]:
            reports = []
            if (sides := priced(
                    partial(restate, url, "nrr", {"start": start, "end": end}, t1, t2),
                    partial(nrr_report, url, start, end, known_at=t1),
                    partial(nrr_report, url, start, end, known_at=t2))) is not None:
                report = sides[0]
                assert_bridge_holds(*sides, ["customers", "starting_mrr", "ending_mrr",
                                             "expansion", "contraction", "churn",
                                             "fx_impact", "nrr", "grr",
                                             "nrr_constant_currency"])
                reports.append(report)
            if (sides := priced(
                    partial(restate, url, "movements", {"first": first, "last": last}, t1, t2),
                    partial(movements_report, url, first, last, t1),
                    partial(movements_report, url, first, last, t2))) is not None:
                moved, old, new = sides
                flat = [{f"{m['month']}.{k}": v for m in r["months"] for k, v in m.items()
                         if k != "month"} for r in (old, new)]
                cells = [name for name in flat[0] if not name.endswith("_exact")]
                assert_bridge_holds(moved, *flat, cells)
                reports.append(moved)
            if (sides := priced(partial(restate, url, "mrr", {"at": day}, t1, t2),
                                partial(mrr_report, url, day, t1),
                                partial(mrr_report, url, day, t2))) is not None:
                assert_bridge_holds(*sides, ["customers", "mrr"])
                reports.append(sides[0])
            for adjustment_ in (a for r in reports for a in r["adjustments"]):
                assert adjustment_["event_ids"], "every change has a cause"
                for event_id in adjustment_["event_ids"]:
                    assert t1 < recorded[event_id]["recorded_at"] <= t2
            if t1 == t2:
                assert not any(r["adjustments"] for r in reports)


def priced(bridge: Callable[[], dict], *reports: Callable[[], dict]) -> list[dict] | None:
    """The bridge and the two reports it joins; None when a report cannot be given for
    want of an exchange rate (contract v2): then the bridge fails too, in the same line."""
    try:
        sides = [report() for report in reports]
    except LedgerError as exc:
        if not str(exc).startswith("no exchange rate "):
            raise
        with pytest.raises(LedgerError, match=r"^no exchange rate [A-Z]{3}->USD in force at "):
            bridge()
        return None
    return [bridge(), *sides]


def test_report_and_explain_show_what_changed_since_a_previous_report(restated):
    url, t1, bridge = restated
    for command in (["report"], ["explain", "nrr"]):
        out = CliRunner().invoke(main, ["--db", url, *command, "--start", "2024-01-31",
                                        "--end", "2024-06-30", "--from", t1, "--format",
                                        "json"])
        assert out.exit_code == 0, out.stderr
        since = json.loads(out.stdout)["since"]
        assert since["adjustments"] == bridge["adjustments"]
        assert since["restated"] == bridge["restated"]
        table = CliRunner().invoke(main, ["--db", url, *command, "--start", "2024-01-31",
                                          "--end", "2024-06-30", "--from", t1])
        assert table.exit_code == 0 and "contraction" in table.stdout
