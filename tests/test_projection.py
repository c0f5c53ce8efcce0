"""The materialised projection and the metric commands, on both stores.

Properties: whatever the arrival order, duplicates, voids and ingest batching, the
projection answers exactly what the pure fold of every stored event answers; as known at
a past position it holds what it held then; a rebuild reproduces the view row for row,
every version included; the retention identities hold.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date
from fractions import Fraction

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from ledger.application import LedgerApplication
from ledger.ingest import Ingestor
from ledger.playbook import SAMPLE, playbook_events
from projections.engine import MRRIndex
from projections.periods import end_of
from projections.projection import MRRProjection
from projections.view import MRRView
from services.ingest import ingest_feed
from services.metrics import mrr_report
from services.projections import current_index
from tests.feeds import cancelled, changed, jsonl, started, voided
from tests.strategies import feeds

CUSTOMERS = {"s0": "c0", "s1": "c0", "s2": "c1", "s3": "c2", "s4": "c3"}


def run(db_url, *args):
    result = CliRunner().invoke(main, ["--db", db_url, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def json_of(db_url, *args):
    return json.loads(run(db_url, *args, "--format", "json"))


def ingest(url, events):
    return ingest_feed(url, jsonl(*events).splitlines()).summary


# -- worked example through the command line ---------------------------------------------

EXAMPLE = [
    {"event_id": "ca", "type": "customer.created", "customer_id": "a",
     "effective_at": "2023-01-01T00:00:00Z", "attributes": {"region": "EU"}},
    {"event_id": "cb", "type": "customer.created", "customer_id": "b",
     "effective_at": "2023-01-01T00:00:00Z", "attributes": {"region": "NA"}},
    started("a1", "sa", "a", "2023-03-10T00:00:00Z", amount="100.00"),
    started("b1", "sb", "b", "2023-07-01T00:00:00Z", amount="600.00", interval="year"),
    changed("a2", "sa", "a", "2024-03-01T00:00:00Z", amount="130.00"),
    cancelled("b2", "sb", "b", "2024-02-01T00:00:00Z"),
]


def test_nrr_json_follows_the_contract(db_url):
    ingest(db_url, EXAMPLE)
    report = json_of(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    report.pop("manifest")
    assert report == {
        "start": "2023-12-31", "end": "2024-12-31", "cohort": None, "segment": {},
        "customers": 2,
        "starting_mrr": "150.00", "starting_mrr_exact": "150",
        "ending_mrr": "130.00", "ending_mrr_exact": "130",
        "expansion": "30.00", "expansion_exact": "30",
        "contraction": "0.00", "contraction_exact": "0",
        "churn": "50.00", "churn_exact": "50",
        "fx_impact": "0.00", "fx_impact_exact": "0",  # contract v2: one currency, no FX
        "nrr": "0.866667", "nrr_exact": "13/15",
        "nrr_constant_currency": "0.866667", "nrr_constant_currency_exact": "13/15",
        "grr": "0.666667", "grr_exact": "2/3",
        "reporting_currency": "USD",
    }
    eu = json_of(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-12-31",
                 "--segment", "region=EU", "--cohort", "2023-Q1")
    assert (eu["customers"], eu["segment"], eu["cohort"], eu["nrr_exact"]) == (
        1, {"region": "EU"}, "2023-Q1", "13/10")


def test_mrr_and_movements_json_and_csv(db_url):
    ingest(db_url, EXAMPLE)
    mrr = json_of(db_url, "mrr", "--at", "2023-07-01")
    mrr.pop("manifest")
    assert mrr == {"date": "2023-07-01", "mrr": "150.00", "mrr_exact": "150", "customers": 2,
                   "reporting_currency": "USD"}
    months = json_of(db_url, "movements", "--start", "2024-01", "--end", "2024-03")["months"]
    assert [m["month"] for m in months] == ["2024-01", "2024-02", "2024-03"]
    assert (months[1]["churn"], months[2]["expansion_exact"]) == ("50.00", "30")
    rows = list(csv.DictReader(run(db_url, "movements", "--start", "2024-02", "--end", "2024-02",
                                   "--format", "csv").splitlines()))
    assert rows == [{"month": "2024-02", "new": "0.00", "new_exact": "0", "expansion": "0.00",
                     "expansion_exact": "0", "contraction": "0.00", "contraction_exact": "0",
                     "churn": "50.00", "churn_exact": "50", "reactivation": "0.00",
                     "reactivation_exact": "0", "fx": "0.00", "fx_exact": "0"}]


@pytest.mark.parametrize(
    "args",
    [["nrr", "--start", "2024-02-30", "--end", "2024-03-01"],
     ["nrr", "--start", "2024-01-01", "--end", "2024-03-01", "--cohort", "2024-Q5"],
     ["nrr", "--start", "2024-01-01", "--end", "2024-03-01", "--segment", "region"],
     ["nrr", "--start", "2024-03-01", "--end", "2024-01-01"],
     ["movements", "--start", "2024-13", "--end", "2024-01"],
     ["mrr", "--at", "yesterday"]],
)
def test_malformed_dates_periods_and_segments_are_usage_errors(sqlite_url, args):
    result = CliRunner().invoke(main, ["--db", sqlite_url, *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_playbook_mrr_equals_the_sum_of_periods_active_on_each_date(sqlite_url):
    ingest(sqlite_url, playbook_events())
    with SAMPLE.open(newline="") as handle:
        periods = list(csv.DictReader(handle))
    for day in ("2018-01-31", "2018-06-30", "2019-03-31", "2019-06-30", "2019-12-31"):
        expected = sum(int(p["monthly_amount"]) for p in periods
                       if p["start_date"] <= day < p["end_date"])
        assert json_of(sqlite_url, "mrr", "--at", day)["mrr_exact"] == str(expected)


def test_demo_prints_mrr_nrr_and_grr(tmp_path):
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'd.db'}", "demo"])
    assert result.exit_code == 0
    assert "NRR 2018-12-31 -> 2019-12-31: 70.09% (exact 82/117), GRR 58.12%" in result.stdout


# -- properties ----------------------------------------------------------------------------

DAYS = st.dates(date(2024, 1, 1), date(2024, 12, 31)).map(lambda d: f"{d}T12:00:00Z")
AMOUNTS = st.sampled_from(["0.00", "9.99", "25.00", "100.00", "1200.00"])


@given(st.lists(st.tuples(st.fractions(min_value=Fraction(1, 100), max_value=10**6),
                          st.fractions(min_value=0, max_value=10**6)), max_size=30))
def test_retention_identities(pairs):
    from projections.nrr import retention

    r = retention(pairs)
    assert r.starting_mrr + r.expansion - r.contraction - r.churn == r.ending_mrr
    if r.starting_mrr:
        assert r.grr <= r.nrr or (r.expansion == 0 and r.grr == r.nrr)
        assert r.grr <= 1


def test_queries_see_every_ingest_not_a_stale_snapshot(db_url):
    ingest(db_url, EXAMPLE[:3])
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "100"
    ingest(db_url, EXAMPLE[3:4])
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "150"
    ingest(db_url, [voided("v1", "a1")])
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "50"


def test_a_replay_replaces_the_query_columns_with_those_of_its_rows(db_url):
    """Columns stored for the same position before a replay (say, by a fold that has
    since been fixed) do not outlive it: queries answer from the replayed rows."""
    ingest(db_url, EXAMPLE)
    with LedgerApplication(db_url) as app:
        projection = MRRProjection(app)
        empty = MRRIndex.from_rows([], [], []).to_bytes()
        projection.view.save_snapshot(projection.position, empty)
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "0"  # stale columns
    assert CliRunner().invoke(main, ["--db", db_url, "replay"]).exit_code == 0
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "150"
    with LedgerApplication(db_url) as app:
        view = MRRProjection(app).view
        assert view.load_snapshot(view.max_tracking_id(app.name)) == view.read(
            MRRIndex.from_rows).to_bytes()


@pytest.mark.parametrize("damage", [lambda blob: blob[: len(blob) // 2], lambda blob: b"\x00"],
                         ids=["cut short", "overwritten"])
def test_damaged_stored_columns_are_built_again_from_the_rows(db_url, damage):
    """They are a cache: a blob cut short or overwritten is no answer's business."""
    ingest(db_url, EXAMPLE)
    with LedgerApplication(db_url) as app:
        view = MRRProjection(app).view
        position = view.max_tracking_id(app.name)
        view.save_snapshot(position, damage(view.load_snapshot(position)))
    assert json_of(db_url, "mrr", "--at", "2023-12-31")["mrr_exact"] == "150"
    with LedgerApplication(db_url) as app:  # and stored again, whole
        view = MRRProjection(app).view
        assert view.load_snapshot(position) == view.read(MRRIndex.from_rows).to_bytes()


class MovedOnMeanwhile:
    """A view whose first look for stored columns (a query's, after its catch-up and
    before it reads the rows) comes after `meanwhile` has run (another process's ingest,
    which catches the view up and stores its own columns), and finds none; the rest is the
    store's view."""

    def __init__(self, view: MRRView, meanwhile: Callable[[], object]) -> None:
        self.view, self.meanwhile = view, meanwhile

    def __getattr__(self, name: str) -> object:
        return getattr(self.view, name)

    def load_snapshot(self, position: int) -> bytes | None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is None:
            return self.view.load_snapshot(position)
        meanwhile()
        return None


class OvertakenProjection(MRRProjection):
    """The projection of `app`, overtaken by `meanwhile` as `MovedOnMeanwhile` says."""

    def __init__(self, app: LedgerApplication, meanwhile: Callable[[], object]) -> None:
        super().__init__(app)
        self.view = MovedOnMeanwhile(self.view, meanwhile)


def test_columns_built_while_another_process_catches_up_are_those_of_their_position(
        db_url):
    """Between a query's catch-up and its read of the rows, another ingest moves the view
    on: the columns (and the answer) are those of the position the query reports."""
    ingest(db_url, EXAMPLE[:3])
    before = mrr_report(db_url, date(2023, 12, 31))
    with LedgerApplication(db_url) as app:
        overtaken = OvertakenProjection(app, lambda: ingest(db_url, EXAMPLE[3:4]))
        index, position = current_index(app, overtaken)
        assert overtaken.position > position  # the other ingest did move the view on
    assert position == before["manifest"]["ledger_head"]["position"]
    assert index.total(end_of(date(2023, 12, 31))) == (  # held in cents
        Fraction(before["mrr_exact"]) * 100, before["customers"])
    assert before["mrr_exact"] == "100"
    assert mrr_report(db_url, date(2023, 12, 31))["mrr_exact"] == "150"


def test_known_at_reproduces_a_figure_as_it_was_before_a_correction(db_url):
    ingest(db_url, EXAMPLE)
    before = json_of(db_url, "events")[-1]["recorded_at"]
    ingest(db_url, [voided("v1", "b2"), changed("a3", "sa", "a", "2024-06-01T00:00:00Z",
                                                  amount="200.00")])
    args = ("nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    now = json_of(db_url, *args)
    then = json_of(db_url, *args, "--known-at", before)
    assert (now["nrr_exact"], then["nrr_exact"]) == ("5/3", "13/15")
    months = json_of(db_url, "movements", "--start", "2024-02", "--end", "2024-02",
                     "--known-at", before)["months"]
    assert months[0]["churn"] == "50.00"
    assert json_of(db_url, "mrr", "--at", "2024-12-31", "--known-at", before)["mrr"] == "130.00"


def test_every_answer_carries_a_manifest_that_reproduces_it(db_url):
    ingest(db_url, EXAMPLE)
    args = ("nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    first = json_of(db_url, *args)
    head = first["manifest"]["ledger_head"]
    events = json_of(db_url, "events")
    assert head["position"] == events[-1]["position"]
    assert first["manifest"]["known_at"] == events[-1]["recorded_at"]
    ingest(db_url, [voided("v1", "b2"), changed("a3", "sa", "a", "2024-06-01T00:00:00Z",
                                                  amount="200.00")])
    assert json_of(db_url, *args)["nrr_exact"] != first["nrr_exact"]
    again = json_of(db_url, *args, "--known-at", first["manifest"]["known_at"])
    assert again == first
    for command in (["mrr", "--at", "2024-01-01"], ["movements", "--start", "2024-01",
                                                   "--end", "2024-02"]):
        reflects = json_of(db_url, *command)["manifest"]
        assert reflects["ledger_head"]["position"] == json_of(db_url, "events")[-1]["position"]


def test_a_view_laid_out_before_rows_had_ranges_is_refolded(db_url):
    ingest(db_url, EXAMPLE)
    before = json_of(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-12-31")
    with LedgerApplication(db_url) as app:
        view = MRRProjection(app).view
        stored = view.stored()
        with view.datastore.transaction(commit=True) as c:  # the old table, with a wrong row
            c.execute("DROP TABLE mrr_steps")
            c.execute("CREATE TABLE mrr_steps (customer_id TEXT NOT NULL, effective_at TEXT "
                      "NOT NULL, mrr TEXT NOT NULL, PRIMARY KEY (customer_id, effective_at))")
            c.execute("INSERT INTO mrr_steps VALUES ('a', '2023-01-01', '1')")
    assert json_of(db_url, "nrr", "--start", "2023-12-31", "--end", "2024-12-31") == before
    with LedgerApplication(db_url) as app:
        assert MRRProjection(app).view.stored() == stored


@pytest.mark.parametrize("fresh_db", ["sqlite", "postgresql"], indirect=True)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])
@given(drawn=feeds(max_events=24, max_ingests=3), split=st.integers(1, 3))
def test_a_view_kept_current_event_by_event_is_a_rebuild_byte_for_byte(fresh_db, drawn,
                                                                       split):
    """The webhook pattern: each delivery recorded and projected at once, backdated
    events and voids among them; the view then holds exactly the rows (ranges included)
    of a rebuild from zero. `split`: how many events each delivery carries."""
    events = [event for recording in drawn.recorded for event in recording]
    with LedgerApplication(fresh_db()) as app:
        ingestor, projection = Ingestor(app, parallel=False), MRRProjection(app)
        for k in range(0, len(events), split):
            summary = ingestor.ingest(enumerate((orjson.dumps(e) for e in
                                                 events[k:k + split]), start=1))
            assert summary.accepted == len(events[k:k + split])
            projection.catch_up()
        kept = projection.view.stored()
        projection.rebuild()
        assert projection.view.stored() == kept
