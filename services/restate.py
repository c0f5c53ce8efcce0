"""`restate`: a figure as known at one instant, bridged to the same figure as known at a
later one, customer by customer, with the events recorded in between that moved it.

Both sides come from the query engine (the very figures `nrr`, `mrr` and `movements`
print with `--known-at`), read customer by customer; the bridge is `projections.restate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from fractions import Fraction
from typing import Any

import numpy as np

from ledger.application import LedgerApplication
from ledger.currencies import minor_unit
from projections.engine import MRRIndex
from projections.explain import cohort_shares
from projections.facts import decode_fact
from projections.movements import KINDS
from projections.nrr import Retention, category
from projections.nrr import cells as retention_amounts
from projections.periods import Period, end_of, month_end, month_label, months
from projections.restate import Bridge, Contribution, bridge, with_events
from services.errors import LedgerError
from services.ledger import open_ledger, reporting_currency
from services.metrics import engine_for, head_position
from services.present import exact_text, money, ratio

NRR_FIELDS = ["customers", "starting_mrr", "ending_mrr", "expansion", "contraction", "churn",
              "fx_impact"]
MRR_FIELDS = ["customers", "mrr"]
COUNTS = {"customers"}
RATIOS = ("nrr", "grr", "nrr_constant_currency")


def _nrr_ratios(s: Mapping[str, Fraction]) -> dict[str, Fraction | None]:
    """The ratios of a side's sums, as `nrr` defines them (`Retention`)."""
    sums = Retention(**{name: s[name] for name in NRR_FIELDS})
    return {name: getattr(sums, name) for name in RATIOS}


def nrr_side(e: MRRIndex, start: date, end: date, vintage: Period | None,
             segment: Mapping[str, str] | None) -> dict[str, Contribution]:
    """Each cohort customer's share, classified at constant currency (its ending MRR at
    the start's rates) with the rates' own change apart as `fx_impact` (contract v2)."""
    out = {}
    for customer, (a, c, b) in cohort_shares(e, end_of(start), end_of(end), vintage,
                                             segment).items():
        out[customer] = {"customers": Fraction(1), "starting_mrr": a, "ending_mrr": b,
                         **retention_amounts(a, c), "fx_impact": b - c}
    return out


def mrr_side(e: MRRIndex, at: date) -> dict[str, Contribution]:
    values, d = e.valued_at(end_of(at))
    return {e.customers[i]: {"customers": Fraction(1), "mrr": Fraction(int(values[i]), d)}
            for i in np.flatnonzero(values > 0)}


def movements_side(e: MRRIndex, first: date, last: date) -> dict[str, Contribution]:
    out: dict[str, dict[str, Fraction]] = {}
    for month, cells, d in e.movement_cells(first, last):
        for kind in KINDS:
            for i in np.flatnonzero(cells[kind] != 0):
                out.setdefault(e.customers[i], {})[f"{month}.{kind}"] = Fraction(
                    int(cells[kind][i]), d)
    return out


def _nrr_labels(c: Contribution | None) -> dict[str, str]:
    return {} if c is None else {  # at constant currency, as classified
        "cohort": category(c["starting_mrr"], c["ending_mrr"] - c["fx_impact"])}


def _mrr_labels(c: Contribution | None) -> dict[str, str]:
    return {} if c is None else {"mrr": "paying"}


def _movement_labels(c: Contribution | None) -> dict[str, str]:
    return {cell.split(".")[0]: cell.split(".")[1] for cell, v in (c or {}).items()
            if v and not cell.endswith(".fx")}  # the category; what the rates moved apart


def restate(url: str, figure: str, options: dict[str, Any], known_from: str,
            known_to: str | None = None) -> dict[str, Any]:
    """The bridge of `figure` ("nrr", "mrr" or "movements", with its options) from as known
    at `known_from` to as known at `known_to` (now if None)."""
    if known_to is not None and known_to < known_from:
        raise LedgerError(f"--to ({known_to}) is before --from ({known_from})")
    with open_ledger(url) as app:
        old, old_manifest = engine_for(app, known_from)
        new, new_manifest = engine_for(app, known_to)
        to = known_to or new_manifest["known_at"] or known_from
        if figure == "nrr":
            args = (options["start"], options["end"], options.get("cohort"),
                    options.get("segment"))
            b = bridge(nrr_side(old, *args), nrr_side(new, *args), NRR_FIELDS, _nrr_ratios,
                       _nrr_labels)
            horizon = end_of(options["end"])
        elif figure == "mrr":
            b = bridge(mrr_side(old, options["at"]), mrr_side(new, options["at"]),
                       MRR_FIELDS, labels=_mrr_labels)
            horizon = end_of(options["at"])
        else:
            first, last = options["first"], options["last"]
            old_side, new_side = movements_side(old, first, last), movements_side(new, first,
                                                                                  last)
            names = [f"{month_label(m)}.{k}" for m in months(first, last) for k in KINDS]
            b = bridge(old_side, new_side, names, labels=_movement_labels)
            horizon = month_end(last)
        b = with_events(b, _causes(app, b, known_from, to, horizon, head_position(new_manifest)))
    return _present(figure, options, known_from, to, b, old_manifest, new_manifest,
                    new.reporting)


def _causes(app: LedgerApplication, b: Bridge, after: str, upto_instant: str, horizon: str,
            upto: int) -> dict[str, tuple[str, ...]]:
    """Each adjusted customer's events recorded after `after` (by the later instant) that
    can move the figure: effective before its horizon, or voiding such an event. For a
    customer billed in a currency other than the reporting one, the exchange rates (and
    voids of rates) recorded in between and effective before the horizon too: they belong
    to no customer, yet revalue its MRR (contract v2)."""
    customers = [a.customer_id for a in b.adjustments]
    by_customer: dict[str, list] = {}
    for customer, position, state in app.ledger_recorder.select_customer_events(customers,
                                                                                 upto):
        if fact := decode_fact(position, state):
            by_customer.setdefault(customer, []).append(fact)
    rates = [f for position, state in app.ledger_recorder.iter_rate_events(upto)
             if (f := decode_fact(position, state))]
    moving_rates = _moving(rates, after, upto_instant, horizon)
    reporting = reporting_currency(app)
    out = {}
    for customer, facts in by_customer.items():
        foreign = any(f.payload.get("currency") not in (None, reporting) for f in facts)
        causes = _moving(facts, after, upto_instant, horizon) + (
            moving_rates if foreign else [])
        out[customer] = tuple(event_id for _, event_id in sorted(causes))
    return out


def _moving(facts: list, after: str, upto_instant: str, horizon: str) -> list[tuple[int, str]]:
    """(position, event id) of the facts recorded in (after, upto_instant] that take effect
    before `horizon`, or void such a fact."""
    effective = {f.event_id: f.effective_at for f in facts}
    return [(f.position, f.event_id) for f in facts
            if after < f.recorded_at <= upto_instant
            and ((f.effective_at or effective.get(f.voids or "") or horizon) < horizon)]


def _value(name: str, value: Fraction | None, places: int) -> dict[str, Any]:
    if name in COUNTS:
        return {name: None if value is None else int(value)}
    if name in RATIOS:
        return ratio(name, value)
    return money(name, value, places)  # type: ignore[arg-type]


def _change(name: str, value: Fraction | None) -> Any:
    """An adjustment's change of a field: a count as an integer, money in currency units
    and ratios exactly, as reduced fractions."""
    if value is None or name in COUNTS:
        return None if value is None else int(value)
    return exact_text(value if name in RATIOS else value / 100)


def _present(figure: str, options: dict[str, Any], known_from: str, known_to: str,
             b: Bridge, old: dict[str, Any], new: dict[str, Any], reporting: str
             ) -> dict[str, Any]:
    def values(fields: Mapping[str, Fraction | None]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in b.fields:
            out.update(_value(name, fields.get(name), minor_unit(reporting)))
        return out

    return {
        "figure": figure,
        **{k: (v.label if isinstance(v, Period) else v.isoformat() if isinstance(v, date)
               else v) for k, v in options.items()},
        "from": known_from,
        "to": known_to,
        "original": values(b.original),
        "adjustments": [
            {"customer_id": a.customer_id,
             "moved": [{"what": w, "before": x, "after": y} for w, x, y in a.moved],
             "event_ids": list(a.event_ids),
             "changes": {k: _change(k, v) for k, v in a.changes.items()}}
            for a in b.adjustments
        ],
        "restated": values(b.restated),
        "reporting_currency": reporting,
        "manifests": {"original": old, "restated": new},
    }
