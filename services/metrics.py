"""MRR, NRR/GRR and movements, as the contract's JSON objects.

Every query first brings the projection up to date, then answers from it; `known_at`
replays the events the ledger had recorded by then through the pure fold instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from fractions import Fraction
from typing import Any, Protocol

from ledger.chain import Link
from ledger.store import LedgerApplication
from projections import reference
from projections.movements import KINDS, Movement
from projections.nrr import Retention
from projections.periods import Period, end_of
from projections.replay import replay
from services.ledger import open_ledger
from services.present import money, ratio
from services.projections import current_index


class Engine(Protocol):
    def total(self, bound: str) -> tuple[Fraction, int]: ...
    def nrr(self, start: str, end: str, cohort: Period | None,
            segment: Mapping[str, str] | None) -> Retention: ...
    def movements(self, first: date, last: date) -> list[Movement]: ...


class _Replay:
    """The reference computation over a replay of what was known at an instant."""

    def __init__(self, app: LedgerApplication, known_at: str, head: Link | None) -> None:
        self.histories = dict(replay(app, head.position if head else 0, known_at))

    def total(self, bound: str) -> tuple[Fraction, int]:
        return reference.mrr_at(self.histories, bound)

    def nrr(self, start: str, end: str, cohort: Period | None,
            segment: Mapping[str, str] | None) -> Retention:
        return reference.nrr(self.histories, start, end, cohort, segment)

    def movements(self, first: date, last: date) -> list[Movement]:
        return reference.movements(self.histories, first, last)


@contextmanager
def engine(url: str, known_at: str | None) -> Iterator[tuple[Engine, dict[str, Any]]]:
    """The engine to answer from, and the manifest of what it reflects."""
    with open_ledger(url) as app:
        yield engine_for(app, known_at)


def engine_for(app: LedgerApplication, known_at: str | None) -> tuple[Engine, dict[str, Any]]:
    recorder = app.ledger_recorder
    if known_at:
        head = recorder.chain_head(known_at=known_at)
        return _Replay(app, known_at, head), manifest(head, known_at)
    index, position = current_index(app)
    return index, manifest(recorder.chain_head(upto=position))


def manifest(head: Link | None, known_at: str | None = None) -> dict[str, Any]:
    """What an answer reflects: re-run with `--known-at` set to its `known_at` and the same
    figures come back, from the same `ledger_head`."""
    return {
        "known_at": known_at or (head.recorded_at if head else None),
        "ledger_head": {"position": head.position, "chain_sha256": head.chain_sha256}
        if head else None,
    }


def mrr_report(url: str, at: date, known_at: str | None = None) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        total, customers = e.total(end_of(at))
    return {"date": at.isoformat(), **money("mrr", total), "customers": customers,
            "manifest": reflects}


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
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cohort": cohort.label if cohort else None,
        "segment": dict(segment or {}),
        **retention_fields(r),
        "manifest": reflects,
    }


def retention_fields(r: Retention) -> dict[str, Any]:
    return {
        "customers": r.customers,
        **money("starting_mrr", r.starting_mrr),
        **money("ending_mrr", r.ending_mrr),
        **money("expansion", r.expansion),
        **money("contraction", r.contraction),
        **money("churn", r.churn),
        **ratio("nrr", r.nrr),
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
            row.update(money(kind, getattr(m, kind)))
        months.append(row)
    return {"months": months, "manifest": reflects}
