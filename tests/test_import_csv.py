"""`revledger import csv`: subscription periods from a spreadsheet become canonical events
whose ids come from their content; the file is the truth under `--sync`.

Expected figures come from the rows themselves (a customer's MRR at a date is the sum of
the amounts of its periods running then, written out below) or from the reference
(projections/reference/) over what was stored, never from the code under test.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from ledger.application import LedgerApplication
from ledger.sources.periods import PRESETS, Layout, PeriodsSource, looks_like_csv
from services.imports import import_periods
from services.metrics import mrr_report
from tests.feeds import stored_reference

PLAYBOOK = "/work/shared/data/mrr_playbook_subscription_periods.csv"


def run(db_url, *args, input=None, code=0):
    result = CliRunner().invoke(main, ["--db", db_url, *args], input=input)
    assert result.exit_code == code, result.output
    return result


def figures(db_url, *args):
    return json.loads(run(db_url, *args, "--format", "json").stdout)


def write(tmp_path, text, name="periods.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _playbook_path():
    from ledger.playbook import SAMPLE

    return str(SAMPLE)


# -- the playbook seed: NRR as the rows say ------------------------------------------------

def _mrr_from_rows(rows, customer, day):
    """MRR at the end of `day`: the periods running then (start <= day < end, end
    exclusive), summed. Written from the seed's definition, not from the code."""
    iso = day.isoformat()
    return sum((Fraction(r["monthly_amount"]) for r in rows if r["customer_id"] == customer
                and r["start_date"] <= iso and (not r["end_date"] or iso < r["end_date"])),
               Fraction(0))


def _nrr_from_rows(rows, start, end):
    customers = {r["customer_id"] for r in rows}
    pairs = [(_mrr_from_rows(rows, c, start), _mrr_from_rows(rows, c, end)) for c in customers]
    pairs = [(m0, m1) for m0, m1 in pairs if m0 > 0]
    starting = sum(m0 for m0, _ in pairs)
    churn = sum(m0 for m0, m1 in pairs if m1 == 0)
    contraction = sum(m0 - m1 for m0, m1 in pairs if 0 < m1 < m0)
    return sum(m1 for _, m1 in pairs) / starting, (starting - churn - contraction) / starting


def test_the_playbook_seed_gives_the_nrr_its_rows_give(db_url):
    run(db_url, "import", "csv", "--preset", "mrr-playbook", _playbook_path())
    with open(_playbook_path(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    for start, end in ((date(2018, 12, 31), date(2019, 12, 31)),
                       (date(2018, 6, 30), date(2019, 6, 30))):
        nrr, grr = _nrr_from_rows(rows, start, end)
        answer = figures(db_url, "nrr", "--start", str(start), "--end", str(end))
        assert (Fraction(answer["nrr_exact"]), Fraction(answer["grr_exact"])) == (nrr, grr)
    # the hand-worked figures of the demo: 585 -> 410, churn 245, expansion 70
    assert figures(db_url, "nrr", "--start", "2018-12-31", "--end", "2019-12-31")[
        "nrr_exact"] == "82/117"
    app = LedgerApplication(db_url)
    try:
        ref = stored_reference(app).nrr(date(2018, 12, 31), date(2019, 12, 31))
    finally:
        app.close()
    assert ref["nrr"] == Fraction(82, 117) and ref["grr"] == Fraction(68, 117)


def test_the_shared_seed_and_the_bundled_copy_are_the_same_file():
    with open(PLAYBOOK, "rb") as shared, open(_playbook_path(), "rb") as bundled:
        assert shared.read() == bundled.read()


def test_the_demo_and_the_preset_record_the_same_events(sqlite_url):
    run(sqlite_url, "demo")
    out = run(sqlite_url, "import", "csv", "--preset", "mrr-playbook", _playbook_path())
    assert "accepted 0 events, duplicates 242" in out.stderr


# -- idempotency, corrections, --sync ------------------------------------------------------

FILE = """customer,start,end,mrr,plan,region
acme,2024-01-01,,100.00,pro,EU
beta,2024-01-01,2024-04-01,50.00,basic,US
gamma,2024-02-01,,30,basic,US
"""
COLUMNS = ("--customer-column", "customer", "--start-column", "start", "--end-column", "end",
           "--amount-column", "mrr", "--attribute", "region")


def test_importing_the_same_file_again_records_nothing(db_url, tmp_path):
    path = write(tmp_path, FILE)
    first = run(db_url, "import", "csv", path, *COLUMNS, "--format", "json")
    assert json.loads(first.stdout)["accepted"] == 7  # 3 starts, 1 end, 3 attributes
    again = json.loads(run(db_url, "import", "csv", path, *COLUMNS, "--format", "json").stdout)
    assert (again["accepted"], again["duplicates"]) == (0, 7)
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "180"
    assert figures(db_url, "mrr", "--at", "2024-04-30")["mrr_exact"] == "130"


def test_a_corrected_row_adds_only_its_events_and_sync_voids_the_old_ones(db_url, tmp_path):
    run(db_url, "import", "csv", write(tmp_path, FILE), *COLUMNS)
    corrected = write(tmp_path, FILE.replace("acme,2024-01-01,,100.00", "acme,2024-01-01,,120.00"),
                      "corrected.csv")
    out = run(db_url, "import", "csv", corrected, *COLUMNS, "--format", "json")
    assert json.loads(out.stdout)["accepted"] == 1  # acme's new start; the rest unchanged
    assert "1 events imported earlier" in out.stderr and "--sync" in out.stderr
    synced = json.loads(run(db_url, "import", "csv", corrected, *COLUMNS, "--sync",
                            "--format", "json").stdout)
    assert (synced["accepted"], synced["voided"]) == (1, 1)  # the void of acme's old start
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "200"  # 120+50+30
    again = json.loads(run(db_url, "import", "csv", corrected, *COLUMNS, "--sync",
                           "--format", "json").stdout)
    assert (again["accepted"], again["voided"]) == (0, 0)


def test_sync_voids_the_events_of_a_row_that_disappeared_and_a_row_may_come_back(db_url,
                                                                              tmp_path):
    run(db_url, "import", "csv", write(tmp_path, FILE), *COLUMNS)
    without_beta = write(tmp_path, "\n".join(line for line in FILE.splitlines()
                                             if not line.startswith("beta")) + "\n", "b.csv")
    out = json.loads(run(db_url, "import", "csv", without_beta, *COLUMNS, "--sync",
                         "--format", "json").stdout)
    assert out["voided"] == 3  # beta's start, end and attributes
    assert figures(db_url, "mrr", "--at", "2024-02-29")["mrr_exact"] == "130"
    voids = [e for e in figures(db_url, "events") if e["type"] == "event.voided"]
    assert len(voids) == 3 and all("no longer in" in v["payload"]["reason"] for v in voids)
    # the row comes back: its events take fresh ids (the old ones stay voided)
    back = json.loads(run(db_url, "import", "csv", write(tmp_path, FILE), *COLUMNS, "--sync",
                          "--format", "json").stdout)
    assert (back["accepted"], back["voided"]) == (3, 0)
    assert figures(db_url, "mrr", "--at", "2024-02-29")["mrr_exact"] == "180"


def test_sync_voids_nothing_while_a_row_is_rejected(db_url, tmp_path):
    run(db_url, "import", "csv", write(tmp_path, FILE), *COLUMNS)
    typo = write(tmp_path, FILE.replace("beta,2024-01-01", "beta,2024-01-32"), "typo.csv")
    out = run(db_url, "import", "csv", typo, *COLUMNS, "--sync", code=1)
    assert "row 3: start: not a date: '2024-01-32'" in out.stderr
    assert "--sync voided nothing: 1 rows were rejected" in out.stderr
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "180"


def test_sync_leaves_other_namespaces_and_other_sources_alone(sqlite_url, tmp_path):
    run(sqlite_url, "demo")
    run(sqlite_url, "import", "csv", write(tmp_path, FILE), *COLUMNS, "--namespace", "crm")
    out = json.loads(run(sqlite_url, "import", "csv", write(tmp_path, FILE.splitlines()[0] +
                                                            "\n", "empty.csv"),
                         *COLUMNS, "--namespace", "crm", "--sync", "--format", "json").stdout)
    assert out["voided"] == 7
    assert figures(sqlite_url, "mrr", "--at", "2019-12-31")["mrr_exact"] == "1255"


# -- bad rows --------------------------------------------------------------------------------

def test_a_bad_row_is_one_line_and_the_good_rows_are_kept(db_url, tmp_path):
    text = FILE + "delta,2024-13-01,,10,pro,EU\nepsilon,2024-01-01,,1,234.50,pro,EU\n" \
                  "zeta,2024-03-01,2024-02-01,10,pro,EU\neta,2024-01-01,,99.999999999999x,p,EU\n"
    out = run(db_url, "import", "csv", write(tmp_path, text), *COLUMNS, code=1)
    lines = out.stderr.splitlines()
    assert lines[0] == "row 5: start: not a date: '2024-13-01'"
    assert lines[1] == "row 6: 7 cells where the header has 6 (quote a value that holds a comma)"
    assert lines[2] == ("row 7: end: 2024-02-01 is not after the start 2024-03-01 (the end is "
                        "the first day not paid)")
    assert lines[3].startswith("row 8: amount: must be a decimal string")
    assert "Traceback" not in out.output
    assert figures(db_url, "mrr", "--at", "2024-03-31")["mrr_exact"] == "180"
    names = {e["customer_id"] for e in figures(db_url, "events")}
    assert names == {"acme", "beta", "gamma"}


def test_a_missing_column_names_the_option_that_fixes_it(sqlite_url, tmp_path):
    out = run(sqlite_url, "import", "csv", write(tmp_path, FILE), code=1)
    assert out.stderr.strip().endswith(
        "no column 'customer_id' (the file has: customer, start, end, mrr, plan, region); "
        "name the column with --customer-column, or use a --preset")


def test_a_column_named_by_an_option_must_exist(sqlite_url, tmp_path):
    out = run(sqlite_url, "import", "csv", write(tmp_path, FILE), *COLUMNS,
              "--quantity-column", "seats", code=1)
    assert "no column 'seats'" in out.stderr and "--quantity-column" in out.stderr


def test_ingest_of_a_csv_file_names_the_command(sqlite_url, tmp_path):
    out = run(sqlite_url, "ingest", write(tmp_path, FILE), code=1)
    assert "looks like CSV" in out.stderr and "revledger import csv" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# -- the source, pure ------------------------------------------------------------------------

def _events(text, layout=None):
    items = list(PeriodsSource(layout or Layout()).parse(io.BytesIO(text.encode()).readlines()))
    return [json.loads(i[1]) for i in items if isinstance(i, tuple)]


def test_end_inclusive_and_optional_columns():
    text = ("customer_id,subscription_id,start_date,end_date,amount,interval,interval_count,"
            "quantity,currency\nc,s,2024-01-01,2024-01-31,1200,year,2,3,usd\n")
    started, cancelled = _events(text, Layout(end_inclusive=True))
    assert {k: started[k] for k in ("subscription_id", "amount", "interval", "interval_count",
                                    "quantity", "currency")} == {
        "subscription_id": "s", "amount": "1200", "interval": "year", "interval_count": 2,
        "quantity": 3, "currency": "USD"}
    assert cancelled["effective_at"] == "2024-02-01T00:00:00.000000Z"


def test_identical_rows_without_a_subscription_id_are_two_subscriptions():
    text = "customer_id,start_date,amount\nc,2024-01-01,10\nc,2024-01-01,10\n"
    first, second = _events(text)
    assert first["subscription_id"] != second["subscription_id"]
    assert first["event_id"] != second["event_id"]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.dates(date(2020, 1, 1), date(2024, 12, 1)),
                          st.integers(0, 10**6)), max_size=8))
def test_ids_depend_on_content_only(rows):
    """The same rows give the same ids in any order; each id is its content's."""
    text = "customer_id,start_date,amount\n" + "".join(f"{c},{d},{a}\n" for c, d, a in rows)
    shuffled = "customer_id,start_date,amount\n" + "".join(
        f"{c},{d},{a}\n" for c, d, a in reversed(rows))
    assert sorted(e["event_id"] for e in _events(text)) == sorted(
        e["event_id"] for e in _events(shuffled))


def test_the_playbook_preset_reads_the_seed_as_the_dbt_project_does():
    layout = PRESETS["mrr-playbook"]
    assert (layout.amount, layout.end_inclusive, layout.default_interval) == (
        "monthly_amount", False, "month")


@pytest.mark.parametrize("line, expected", [
    (b"customer,start,end,amount\n", True), (b'{"event_id": "a", "type": "x"}\n', False),
    (b"\xef\xbb\xbfa,b\n", True), (b"\n", False)])
def test_looks_like_csv(line, expected):
    assert looks_like_csv(line) is expected


# -- property: any periods file gives the MRR its rows give, and once only ---------------------

PERIOD = st.tuples(st.sampled_from(["a", "b", "c"]), st.dates(date(2023, 1, 1), date(2024, 12, 31)),
                   st.one_of(st.none(), st.integers(1, 400)),
                   st.decimals(0, 10**6, places=2, allow_nan=False))
ASKED = (date(2023, 6, 30), date(2023, 12, 31), date(2024, 6, 30), date(2025, 12, 31))


def _file(rows):
    lines = ["customer_id,start_date,end_date,amount"]
    for customer, start, days, amount in rows:
        end = "" if days is None else str(start + timedelta(days=days))
        lines.append(f"{customer},{start},{end},{amount}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fresh_db", ["sqlite"], indirect=True)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])
@given(rows=st.lists(PERIOD, max_size=12))
def test_any_periods_file_gives_the_mrr_of_its_running_rows(fresh_db, rows):
    """MRR at the end of D = the amounts of the rows with start <= D < end (end exclusive,
    empty: running), each row a subscription of its own; importing again adds nothing."""
    url, text = fresh_db(), _file(rows)
    first = import_periods(url, [line.encode() for line in text.splitlines(True)], Layout())
    assert first.ingest.summary.rejected == 0
    for day in ASKED:
        expected = sum((Fraction(amount) for _, start, days, amount in rows
                        if start <= day and (days is None or day < start + timedelta(days=days))),
                       Fraction(0))
        assert Fraction(mrr_report(url, day)["mrr_exact"]) == expected, day
    again = import_periods(url, [line.encode() for line in text.splitlines(True)], Layout())
    assert (again.ingest.summary.accepted, again.stale) == (0, 0)
