"""The auditor's questions: a customer's history, and the customers behind an NRR."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from projections.explain import explain_nrr
from projections.facts import decode_fact
from projections.fold import by_customer, fold_customer, mrr_after, visible
from projections.nrr import retention
from projections.periods import Period, end_of
from projections.projection import read_facts
from services.checkpoints import tree_fields
from services.errors import LedgerError
from services.ledger import known_head, open_ledger
from services.metrics import manifest, retention_fields
from services.present import money


def customer_history(url: str, customer: str, known_at: str | None = None) -> dict[str, Any]:
    """The customer's events in effective order (voids in their place, voided events
    marked), each with the customer's MRR once it applied."""
    with open_ledger(url) as app:
        head, upto = known_head(app, known_at)
        rows = app.ledger_recorder.select_customer_events([customer], upto)
        tree = tree_fields(app.ledger_recorder, head)
    facts = [f for _, position, state in rows if (f := decode_fact(position, state))]
    if not facts:
        raise LedgerError(f"the ledger holds no events of customer {customer!r}"
                          + (f" recorded by {known_at}" if known_at else ""))
    voided_by = {f.voids: f for f in facts if f.voids is not None}
    steps = fold_customer(visible(facts)).steps
    events = []
    for fact in sorted(facts, key=lambda f: (f.effective_at or f.recorded_at, f.position)):
        void = voided_by.get(fact.event_id)
        counts = void is None and fact.voids is None
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
            **(money("mrr_after", mrr_after(steps, fact.effective_at)) if counts
               else {"mrr_after": None, "mrr_after_exact": None}),
        })
    return {"customer_id": customer, "events": events,
            "manifest": manifest(head, known_at, tree)}


def explain_nrr_report(
    url: str,
    start: date,
    end: date,
    vintage: Period | None = None,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> dict[str, Any]:
    """`nrr`, one row per cohort customer, from a replay of the events (known at
    `known_at`, or all of them)."""
    with open_ledger(url) as app:
        head, upto = known_head(app, known_at)
        facts = by_customer(read_facts(app, upto), known_at)
        tree = tree_fields(app.ledger_recorder, head)
    histories = {customer: fold_customer(fs) for customer, fs in facts.items()}
    rows = explain_nrr(histories, facts, end_of(start), end_of(end), vintage, segment)
    totals = retention((r.starting_mrr, r.ending_mrr) for r in rows)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cohort": vintage.label if vintage else None,
        "segment": dict(segment or {}),
        "customers": [
            {"customer_id": r.customer_id, **money("starting_mrr", r.starting_mrr),
             **money("ending_mrr", r.ending_mrr), "category": r.category,
             "event_ids": list(r.event_ids)}
            for r in rows
        ],
        "totals": retention_fields(totals),
        "manifest": manifest(head, known_at, tree),
    }
