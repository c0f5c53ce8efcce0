"""The auditor's questions: a customer's history, and the customers behind an NRR."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from ledger.application import LedgerApplication
from ledger.batches import batched
from ledger.currencies import minor_unit
from projections.explain import CustomerEvents, explain_nrr
from projections.facts import Fact, by_customer_stream, decode_fact
from projections.fold import fold_customer, history_order, mrr_after, visible
from projections.nrr import retention
from projections.periods import Period, end_of
from projections.rates import Worth
from services.checkpoints import tree_fields
from services.errors import LedgerError
from services.ledger import known_head, open_ledger, reporting_currency
from services.metrics import (
    currency_fields,
    engine_for,
    head_position,
    ledger_rates,
    manifest,
    retention_fields,
    segment_exists,
)
from services.present import exact_text, money


def customer_history(url: str, customer: str, known_at: str | None = None) -> dict[str, Any]:
    """The customer's events in effective order (voids in their place, voided events
    marked), each with the customer's MRR once it applied."""
    with open_ledger(url) as app:
        head, upto = known_head(app, known_at)
        rows = app.ledger_recorder.select_customer_events([customer], upto)
        rates, reporting = ledger_rates(app, upto), reporting_currency(app)
        tree = tree_fields(app.ledger_recorder, head)
        facts = [f for _, position, state in rows if (f := decode_fact(position, state))]
        if not facts:
            raise LedgerError(f"the ledger holds no events of customer {customer!r}"
                              + (f" recorded by {known_at}" if known_at else ""))
        return _history(customer, facts, rates.worth(reporting), minor_unit(reporting)) | {
            "reporting_currency": reporting, "manifest": manifest(head, known_at, tree)}


def _history(customer: str, facts: list[Fact], worth: Worth, places: int) -> dict[str, Any]:
    """Each event with the customer's MRR once it applied: in each currency billed
    (`mrr_after_native`, exact), and in the reporting currency at the rates in force at
    that instant (contract v2)."""
    voided_by = {f.voids: f for f in facts if f.voids is not None}
    history = fold_customer(visible(facts))
    events = []
    for fact in sorted(facts, key=history_order):
        void = voided_by.get(fact.event_id)
        counts = void is None and fact.voids is None
        native = ({c: mrr_after(steps, fact.effective_at) for c, steps in history.steps.items()}
                  if counts else {})
        events.append({
            "position": fact.position,
            "effective_at": fact.effective_at,
            "recorded_at": fact.recorded_at,
            "type": fact.type,
            "event_id": fact.event_id,
            "subscription_id": fact.subscription_id,
            "voids": fact.voids,
            "voided_by": void.event_id if void else None,
            "voided_at": void.recorded_at if void else None,
            **(money("mrr_after", worth(native, _just_after(fact.effective_at)), places)
               if counts else {"mrr_after": None, "mrr_after_exact": None}),
            "mrr_after_native": {c: exact_text(v / 100) for c, v in native.items() if v}
            if counts else None,
        })
    return {"customer_id": customer, "events": events}


def _just_after(instant: str | None) -> str:
    """The bound counting everything effective at or before `instant`."""
    moment = datetime.fromisoformat(instant[:-1]) + timedelta(microseconds=1)  # type: ignore[index]
    return moment.isoformat(timespec="microseconds") + "Z"


def explain_nrr_report(
    url: str,
    start: date,
    end: date,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> dict[str, Any]:
    """`nrr`, one row per cohort customer: the cohort and its figures from the view (as
    known at `known_at`, or now), like `nrr` itself; the events behind each figure read
    for the cohort's customers only, up to the position the view reflects."""
    with open_ledger(url) as app:
        e, reflects = engine_for(app, known_at)
        segment_exists(e, segment)
        rows = explain_nrr(e, end_of(start), end_of(end),
                           customer_events(app, head_position(reflects)), vintage, segment,
                           known_at)
    places = minor_unit(e.reporting)
    totals = retention((r.starting_mrr, r.ending_mrr, r.constant_ending) for r in rows)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cohort": vintage.label if vintage else None,
        "segment": dict(segment or {}),
        "customers": [
            {"customer_id": r.customer_id, **money("starting_mrr", r.starting_mrr, places),
             **money("ending_mrr", r.ending_mrr, places),
             **money("fx_impact", r.fx_impact, places), "category": r.category,
             "event_ids": list(r.event_ids)}
            for r in rows
        ],
        "totals": retention_fields(totals, places),
        **currency_fields(e),
        "manifest": reflects,
    }


def customer_events(app: LedgerApplication, upto: int) -> CustomerEvents:
    """The ledger's events of given customers recorded by position `upto` (the voids of
    their events with them), customer by customer, read a thousand customers at a time."""
    def read(customers: Sequence[str]) -> Iterator[tuple[str, list[Fact]]]:
        for chunk in batched(customers, 1000):
            yield from by_customer_stream(app.ledger_recorder.select_customer_events(chunk,
                                                                                      upto))
    return read
