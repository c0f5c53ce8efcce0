"""Every figure of every query equals the reference on every feed the contract allows.

Feeds come from `tests.strategies.feeds` (every type, optional field, extra, offset, tie
and void shape of contract v1.1), delivered in random order with duplicates, over several
ingests, into a real ledger on both stores. The expected values come from
`projections.reference`, which folds the delivered records as plainly as the contract
reads and shares no code with the fast path. Checked on the current view and as known
after each ingest, then again after a rebuild, which must give the very same rows; and
`verify` must pass.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from ledger.application import LedgerApplication
from projections import reference
from projections.periods import parse_month, parse_period
from projections.projection import MRRProjection
from services.analysis import cohorts_report, summary_report
from services.audit import customer_history, explain_nrr_report
from services.ingest import ingest_feed
from services.metrics import movements_report, mrr_report, nrr_report
from services.verify import verify_ledger
from tests.feeds import jsonl
from tests.strategies import DrawnFeed, feeds

DAYS = (date(2023, 11, 30), date(2023, 12, 31), date(2024, 1, 31), date(2024, 2, 29),
        date(2024, 6, 30), date(2024, 12, 31), date(2025, 2, 28), date(2026, 12, 31))
PERIODS = ((date(2023, 12, 31), date(2024, 12, 31)), (date(2024, 1, 31), date(2024, 2, 29)),
           (date(2016, 12, 31), date(2024, 6, 30)))
COHORTS = (None, "2024-Q1", "2024-01", "2023")
SEGMENTS = (None, {"region": "EU"}, {"region": "EU", "tier": "a"})
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
MONEY = ("starting_mrr", "ending_mrr", "expansion", "contraction", "churn")


def exact(value: str | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def assert_answers_equal_the_reference(url: str, events: list[reference.Event],
                                       known_at: str | None, thorough: bool) -> None:
    """Every query of the ledger at `url` against the reference over `events`. Each query
    opens the ledger, which costs a PostgreSQL connection pool: not `thorough`, fewer
    periods, cohorts and segments are asked about."""
    ref = reference.Reference(events)
    periods, cohorts, segments = (PERIODS, COHORTS, SEGMENTS) if thorough else (
        PERIODS[:1], COHORTS[:2], SEGMENTS[:2])
    effective = {e.event_id: e.effective_at for e in events if "effective_at" in e.record}
    for day in DAYS:
        answer = mrr_report(url, day, known_at)
        assert (exact(answer["mrr_exact"]), answer["customers"]) == ref.mrr(day), day
    for start, end in periods:
        for cohort in cohorts:
            for segment in segments:
                answer = nrr_report(url, start, end, cohort and parse_period(cohort), segment,
                                    known_at)
                expected = ref.nrr(start, end, cohort, segment)
                got = {k: exact(answer[f"{k}_exact"]) for k in (*MONEY, "nrr", "grr")}
                assert {**got, "customers": answer["customers"]} == expected, (start, cohort)
        report = summary_report(url, start, end, known_at)
        assert (exact(report["mrr_at_start_exact"]), report["customers_at_start"]) == \
            ref.mrr(start)
        assert (exact(report["mrr_at_end_exact"]), report["customers_at_end"]) == ref.mrr(end)
        expected = ref.nrr(start, end)
        assert {k: exact(report[f"{k}_exact"]) for k in (*MONEY, "nrr", "grr")} == {
            k: expected[k] for k in (*MONEY, "nrr", "grr")}
        months = ref.movements(_next_month(start), end.isoformat()[:7]) \
            if start.isoformat()[:7] < end.isoformat()[:7] else []
        assert {k: exact(report["movements"][f"{k}_exact"]) for k in KINDS} == {
            k: sum((m[k] for m in months), Fraction(0)) for k in KINDS}
        explained = explain_nrr_report(url, start, end, known_at=known_at)
        expected = ref.nrr(start, end)
        assert {k: exact(explained["totals"][f"{k}_exact"]) for k in MONEY} == {
            k: expected[k] for k in MONEY}
    moves = movements_report(url, parse_month("2023-10"), parse_month("2025-03"), known_at)
    got_moves = [{"month": m["month"], **{k: exact(m[f"{k}_exact"]) for k in m
                                          if f"{k}_exact" in m}} for m in moves["months"]]
    assert got_moves == ref.movements("2023-10", "2025-03")
    triangle = cohorts_report(url, date(2024, 1, 1), date(2024, 12, 31), "quarter", "nrr",
                              None, known_at)
    for i, row in enumerate(triangle["cohorts"]):
        for j, cell in enumerate(row["ages_exact"]):
            start, end = _quarter_end(i), _quarter_end(i + j)
            assert exact(cell) == ref.nrr(start, end, row["cohort"])["nrr"], (i, j)
    for customer, history in ref.histories.items():
        answer = customer_history(url, customer, known_at)
        for event in answer["events"]:
            expected_mrr: Any = None
            if event["mrr_after_exact"] is not None:
                expected_mrr = history.mrr_at(effective[event["event_id"]])
            assert exact(event["mrr_after_exact"]) == expected_mrr, event["event_id"]


def _next_month(day: date) -> str:
    return reference.next_month(day.isoformat()[:7])


def _quarter_end(i: int) -> date:
    return (date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31))[i]


def events_of(drawn: DrawnFeed, ingests: int) -> list[reference.Event]:
    """The records of the first `ingests` ingests, as the reference reads them: in
    recorded order, each ingest one instant of recording."""
    out = []
    for k, ingest in enumerate(drawn.recorded[:ingests]):
        for record in ingest:
            out.append(reference.Event(len(out) + 1, f"{k:06d}", record))
    return out


def check_feed(url: str, drawn: DrawnFeed, thorough: bool = True) -> None:
    known = []
    for k, ingest in enumerate(drawn.ingests, start=1):
        result = ingest_feed(url, jsonl(*ingest).splitlines())
        assert result.summary.rejected == 0
        with LedgerApplication(url) as app:
            head = app.ledger_recorder.chain_head()
            known.append((head.recorded_at if head else None, k))
    assert_answers_equal_the_reference(url, events_of(drawn, len(drawn.ingests)), None,
                                       thorough)
    for known_at, k in known:
        if known_at is not None:
            assert_answers_equal_the_reference(url, events_of(drawn, k), known_at, thorough)
    assert verify_ledger(url).ok
    with LedgerApplication(url) as app:
        projection = MRRProjection(app)
        stored = projection.view.stored()
        projection.rebuild()
        assert projection.view.stored() == stored


PROPERTY = settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("fresh_db", ["sqlite"], indirect=True)
@PROPERTY
@given(drawn=feeds())
def test_every_figure_equals_the_reference_on_sqlite(fresh_db, drawn):
    check_feed(fresh_db(), drawn)


@pytest.mark.parametrize("fresh_db", ["postgresql"], indirect=True)
@settings(PROPERTY, max_examples=max(5, settings.default.max_examples // 5))
@given(drawn=feeds())
def test_every_figure_equals_the_reference_on_postgresql(fresh_db, drawn):
    check_feed(fresh_db(), drawn, thorough=False)
