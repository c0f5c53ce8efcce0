"""MRR, NRR/GRR and movements, as the contract's JSON objects.

Every query first brings the projection up to date, then answers from it; with `known_at`,
from the projection's rows as the ledger held them then (the view is bitemporal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from ledger.application import LedgerApplication
from ledger.chain import Link
from ledger.currencies import minor_unit
from ledger.held import recorded_settings
from ledger.settings import DEFAULT_DB, DEMO_DB, redact
from projections import kpis
from projections.engine import MRRIndex
from projections.movements import KINDS, Movement
from projections.nrr import Retention
from projections.periods import Period, end_of, next_month
from projections.rates import Rates, stored_quotes
from services.checkpoints import tree_fields
from services.ledger import known_head, open_ledger, reporting_currency
from services.notices import notice
from services.present import money, optional_money, ratio
from services.projections import caught_up, current_index, index_from_rows


@contextmanager
def engine(url: str, known_at: str | None) -> Iterator[tuple[MRRIndex, dict[str, Any]]]:
    """The engine to answer from, and the manifest of what it reflects."""
    with open_ledger(url) as app:
        yield engine_for(app, known_at)


def engine_for(app: LedgerApplication, known_at: str | None) -> tuple[MRRIndex, dict[str, Any]]:
    """The engine answers in the ledger's reporting currency, at the exchange rates
    recorded by the same position as its rows (contract v2: rates are events too)."""
    recorder = app.ledger_recorder
    read_nothing(app, known_at)
    if known_at:  # the projection's rows as they were then, in the same query columns
        head, upto = known_head(app, known_at)
        projection = caught_up(app)
        index = index_from_rows(projection, upto)
        return (priced(app, index, upto),
                manifest(head, known_at, tree_fields(recorder, head)) | _settings(app))
    index, position = current_index(app)  # priced: at the rates held at its position
    head = recorder.chain_head(upto=position)
    return index, manifest(head, tree=tree_fields(recorder, head)) | _settings(app)


def head_position(reflects: dict[str, Any]) -> int:
    """The position of the last event an answer reflects (0 for none), read from its
    manifest: where what it reads of the ledger beside the view stops."""
    head = reflects["ledger_head"]
    return head["position"] if head else 0


def _settings(app: LedgerApplication) -> dict[str, Any]:
    """How the ledger reads its billing sources (e.g. Stripe's coupon and cancellation
    choices), where any is recorded: part of what a figure means."""
    settings = recorded_settings(app)
    return {"source_settings": settings} if settings else {}


def read_nothing(app: LedgerApplication, known_at: str | None) -> None:
    """Say so when the answer can see no event: the ledger holds none (naming the database
    read, and the demo ledger if that is what was meant), or `known_at` is before the first
    recording (naming it)."""
    first = app.ledger_recorder.first_event_recorded_at()
    if first is None:
        hint = ""
        if app.url == DEFAULT_DB and Path(DEMO_DB.removeprefix("sqlite:///")).exists():
            hint = f"; did you mean --db {DEMO_DB}?"
        notice(f"the ledger {redact(app.url)} holds no events: every figure is zero{hint}")
    elif known_at is not None and known_at < first:
        notice(f"--known-at {known_at} is before the first recording ({first}): the ledger "
               "knew no events then, every figure is zero")


def segment_exists(e: MRRIndex, segment: Mapping[str, str] | None) -> None:
    """Say so when no customer ever had a segment's value, listing the values there are."""
    for key, value in (segment or {}).items():
        values = e.attribute_values(key)
        if value in values:
            continue
        if values:
            notice(f"no customer ever had {key}={value}; {key} takes: "
                   f"{', '.join(sorted(values))}")
        else:
            notice(f"no customer ever had the attribute {key!r}; " + _attributes(e))


def _attributes(e: MRRIndex) -> str:
    keys = sorted(e.attr_codes)
    return f"attributes: {', '.join(keys)}" if keys else "no customer has attributes"


def priced(app: LedgerApplication, index: MRRIndex, upto: int) -> MRRIndex:
    """`index` with the rates visible at position `upto` and the reporting currency."""
    return index.priced(ledger_rates(app, upto), reporting_currency(app))


def ledger_rates(app: LedgerApplication, upto: int) -> Rates:
    """The exchange rates recorded by position `upto`, less those voided by then."""
    return Rates(stored_quotes(app.ledger_recorder.iter_rate_events(upto)))


def currency_fields(e: MRRIndex) -> dict[str, Any]:
    """What every answer says of its currency (contract v2)."""
    return {"reporting_currency": e.reporting}


def manifest(
    head: Link | None, known_at: str | None = None, tree: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What an answer reflects: re-run with `--known-at` set to its `known_at` and the same
    figures come back, from the same `ledger_head`; `merkle_tree` is the size and root of
    the Merkle tree of the events it saw, which a signed checkpoint of that size repeats."""
    return {
        "known_at": known_at or (head.recorded_at if head else None),
        "ledger_head": {"position": head.position, "chain_sha256": head.chain_sha256}
        if head else None,
        "merkle_tree": tree,
    }


def mrr_report(url: str, at: date, known_at: str | None = None) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        total, customers = e.total(end_of(at))
    return {"date": at.isoformat(), **money("mrr", total, places(e)), "customers": customers,
            **currency_fields(e), "manifest": reflects}


def nrr_report(
    url: str,
    start: date,
    end: date,
    cohort: Period | None = None,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        r = e.nrr(end_of(start), end_of(end), cohort, segment)
        segment_exists(e, segment)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cohort": cohort.label if cohort else None,
        "segment": dict(segment or {}),
        **retention_fields(r, places(e)),
        **currency_fields(e),
        "manifest": reflects,
    }


def places(e: MRRIndex) -> int:
    """The decimals the reporting currency's amounts are shown with (ISO 4217)."""
    return minor_unit(e.reporting)


def retention_fields(r: Retention, places: int = 2) -> dict[str, Any]:
    return {
        "customers": r.customers,
        **money("starting_mrr", r.starting_mrr, places),
        **money("ending_mrr", r.ending_mrr, places),
        **money("expansion", r.expansion, places),
        **money("contraction", r.contraction, places),
        **money("churn", r.churn, places),
        **money("fx_impact", r.fx_impact, places),
        **ratio("nrr", r.nrr),
        **ratio("nrr_constant_currency", r.nrr_constant_currency),
        **ratio("grr", r.grr),
    }


def movements_report(
    url: str, first: date, last: date, known_at: str | None = None
) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        rows = e.movements(first, last)
    months = []
    for m in rows:
        row: dict[str, Any] = {"month": m.month}
        for kind in KINDS:
            row.update(money(kind, getattr(m, kind), places(e)))
        months.append(row)
    return {"months": months, **currency_fields(e), "manifest": reflects}


def period_movements(e: MRRIndex, start: date, end: date) -> list[Movement]:
    """The monthly movements between two dates: of the months after `start`'s up to
    `end`'s (none when both fall in one month), what the quick ratio and the report sum."""
    first, last = start.replace(day=1), end.replace(day=1)
    return e.movements(next_month(first), last) if first < last else []


def _at(e: MRRIndex, day: date, suffix: str = "") -> dict[str, Any]:
    total, customers = e.total(end_of(day))
    return {**money("mrr" + suffix, total, places(e)),
            **money("arr" + suffix, kpis.arr(total), places(e)),
            f"customers{suffix}": customers,
            **optional_money("arpa" + suffix, kpis.arpa(total, customers))}


def metrics_report(url: str, start: date | None, end: date,
                   known_at: str | None = None) -> dict[str, Any]:
    """MRR, ARR, customers and ARPA at the end of `end`; with `start`, the same at the
    start, and the logo churn rate of the customers paying then and the quick ratio of the
    months between."""
    with engine(url, known_at) as (e, reflects):
        if start is None:
            return {"date": end.isoformat(), **_at(e, end), **currency_fields(e),
                    "manifest": reflects}
        r = e.nrr(end_of(start), end_of(end))
        moves = period_movements(e, start, end)
    gained, lost = kpis.gained_and_lost(moves)
    return {
        "start": start.isoformat(), "end": end.isoformat(),
        **_at(e, start, "_at_start"), **_at(e, end),
        "churned_customers": r.churned, "cohort_customers": r.customers,
        **ratio("logo_churn_rate", kpis.logo_churn_rate(r)),
        **money("gained", gained, places(e)), **money("lost", lost, places(e)),
        **ratio("quick_ratio", kpis.quick_ratio(gained, lost)),
        **currency_fields(e),
        "manifest": reflects,
    }


def nrr_by_report(url: str, start: date, end: date, key: str,
                  cohort: Period | None = None, segment: Mapping[str, str] | None = None,
                  known_at: str | None = None) -> dict[str, Any]:
    """`nrr` broken down by the value of attribute `key` at the start: one row per value
    (then the customers without it, value null), each what `nrr --segment key=value`
    answers."""
    with engine(url, known_at) as (e, reflects):
        groups = e.nrr_by(end_of(start), end_of(end), key, cohort, segment)
        segment_exists(e, segment)
        if not e.attribute_values(key):
            notice(f"no customer ever had the attribute {key!r}; " + _attributes(e))
    return {
        "start": start.isoformat(), "end": end.isoformat(),
        "cohort": cohort.label if cohort else None, "segment": dict(segment or {}),
        "by": key,
        "rows": [{"value": value, **retention_fields(r, places(e))} for value, r in groups],
        **currency_fields(e),
        "manifest": reflects,
    }
