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

from collections.abc import Callable
from datetime import date
from fractions import Fraction
from functools import partial
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings

from ledger.application import LedgerApplication
from projections import reference
from projections.periods import parse_month, parse_period
from projections.projection import MRRProjection
from services.analysis import cohorts_report, summary_report
from services.audit import customer_history, explain_nrr_report
from services.errors import LedgerError
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
KINDS = ("new", "expansion", "contraction", "churn", "reactivation", "fx")
MONEY = ("starting_mrr", "ending_mrr", "expansion", "contraction", "churn", "fx_impact")
RATIOS = ("nrr", "nrr_constant_currency", "grr")
T = TypeVar("T")
U = TypeVar("U")


def both(answer: Callable[[], T], expected: Callable[[], U]) -> tuple[T, U] | None:
    """The answer and the reference's, or None when the reference cannot give the figure
    for want of an exchange rate: then the answer must fail too, with one line naming
    the currency (contract v2: never a silent 0, never a guess)."""
    try:
        want = expected()
    except reference.NoRate:  # which missing one is named first may differ: any of them
        with pytest.raises(LedgerError, match=r"^no exchange rate [A-Z]{3}->USD in force at "):
            answer()
        return None
    return answer(), want


def identities_hold(r: dict[str, Fraction | None]) -> None:
    """starting + expansion - contraction - churn + fx_impact = ending, exactly."""
    assert (r["starting_mrr"] + r["expansion"] - r["contraction"] - r["churn"]  # type: ignore[operator]
            + r["fx_impact"]) == r["ending_mrr"]


def exact(value: str | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def assert_answers_equal_the_reference(url: str, events: list[reference.Event],
                                       known_at: str | None, thorough: bool) -> None:
    """Every query of the ledger at `url` against the reference over `events`. Each query
    opens the ledger, which costs a PostgreSQL connection pool: not `thorough`, fewer
    periods, cohorts and segments are asked about."""
    ref = reference.Reference(events, reporting="USD")
    periods, cohorts, segments = (PERIODS, COHORTS, SEGMENTS) if thorough else (
        PERIODS[:1], COHORTS[:2], SEGMENTS[:2])
    owners = reference.customer_of(events)
    for day in DAYS:
        if pair := both(partial(mrr_report, url, day, known_at), partial(ref.mrr, day)):
            answer, expected = pair
            assert (exact(answer["mrr_exact"]), answer["customers"]) == expected, day
            assert answer["reporting_currency"] == "USD"
    for start, end in periods:
        for cohort in cohorts:
            for segment in segments:
                pair = both(partial(nrr_report, url, start, end,
                                    cohort and parse_period(cohort), segment, known_at),
                            partial(ref.nrr, start, end, cohort, segment))
                if pair:
                    answer, expected = pair
                    got = {k: exact(answer[f"{k}_exact"]) for k in (*MONEY, *RATIOS)}
                    assert {**got, "customers": answer["customers"]} == expected, (start, cohort)
                    identities_hold(got)
        pair = both(partial(summary_report, url, start, end, known_at),
                    partial(_summary, ref, start, end))
        if pair:
            report, (at_start, at_end, expected, months) = pair
            assert (exact(report["mrr_at_start_exact"]), report["customers_at_start"]) == \
                at_start
            assert (exact(report["mrr_at_end_exact"]), report["customers_at_end"]) == at_end
            assert {k: exact(report[f"{k}_exact"]) for k in (*MONEY, *RATIOS)} == {
                k: expected[k] for k in (*MONEY, *RATIOS)}
            assert {k: exact(report["movements"][f"{k}_exact"]) for k in KINDS} == {
                k: sum((m[k] for m in months), Fraction(0)) for k in KINDS}
        pair = both(partial(explain_nrr_report, url, start, end, known_at=known_at),
                    partial(_explained, ref, events, start, end))
        if pair:
            explained, (expected, rows) = pair
            assert {k: exact(explained["totals"][f"{k}_exact"]) for k in MONEY} == {
                k: expected[k] for k in MONEY}
            assert [(r["customer_id"], exact(r["starting_mrr_exact"]),
                     exact(r["ending_mrr_exact"]), r["event_ids"])
                    for r in explained["customers"]] == rows
    pair = both(partial(movements_report, url, parse_month("2023-10"), parse_month("2025-03"),
                        known_at),
                partial(ref.movements, "2023-10", "2025-03"))
    if pair:
        moves, expected_moves = pair
        got_moves = [{"month": m["month"], **{k: exact(m[f"{k}_exact"]) for k in m
                                              if f"{k}_exact" in m}} for m in moves["months"]]
        assert got_moves == expected_moves
    pair = both(partial(cohorts_report, url, date(2024, 1, 1), date(2024, 12, 31), "quarter",
                        "nrr", None, known_at),
                lambda: [[ref.nrr(_quarter_end(i), _quarter_end(j), f"2024-Q{i + 1}")["nrr"]
                          for j in range(i, 4)] for i in range(4)])
    if pair:
        triangle, cells = pair
        for i, row in enumerate(triangle["cohorts"]):
            assert [exact(cell) for cell in row["ages_exact"]] == cells[i], i
    for customer, history in ref.histories.items():
        own = {e.event_id: e.effective_at for e in reference.visible(events)
               if owners[e.event_id] == customer}
        pair = both(partial(customer_history, url, customer, known_at),
                    partial(_history, ref, history, own))
        if pair:
            answer, values = pair
            for event in answer["events"]:
                expected_mrr: Any = None
                if event["mrr_after_exact"] is not None:
                    expected_mrr = values[event["event_id"]]
                assert exact(event["mrr_after_exact"]) == expected_mrr, event["event_id"]


def _summary(ref: reference.Reference, start: date, end: date) -> tuple[Any, ...]:
    """What `report` shows, by the reference."""
    months = ref.movements(_next_month(start), end.isoformat()[:7]) \
        if start.isoformat()[:7] < end.isoformat()[:7] else []
    return ref.mrr(start), ref.mrr(end), ref.nrr(start, end), months


def _history(ref: reference.Reference, history: reference.History,
             own: dict[str, str]) -> dict[str, Fraction]:
    """Each of the customer's counting events' MRR once applied, at the rates then."""
    return {e: ref.value(history.mrr_at(at), at) for e, at in own.items()}


def _explained(ref: reference.Reference, events: list[reference.Event], start: date,
               end: date) -> tuple[dict[str, Any], list[tuple[str, Fraction, Fraction, list[str]]]]:
    """What `explain nrr` shows, by the reference: the NRR, and each cohort customer's MRR
    at start and end with its subscription events effective in the period at an instant
    its MRR (in some currency) changed, in effective order (ties in recorded order)."""
    s, e = reference.last_instant(start), reference.last_instant(end)
    owners = reference.customer_of(events)
    rows = []
    for customer, history in ref.histories.items():
        if not reference.paying(history.mrr_at(s)):
            continue
        changes = {at for steps in history.steps.values() for at, _ in steps if s < at <= e}
        moved = sorted((event.effective_at, event.position, event.event_id)
                       for event in reference.visible(events)
                       if owners[event.event_id] == customer and event.effective_at in changes
                       and event.record.get("subscription_id") is not None)
        rows.append((customer, ref.value(history.mrr_at(s), s),
                     ref.value(history.mrr_at(e), e), [i for *_, i in moved]))
    return ref.nrr(start, end), rows


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
