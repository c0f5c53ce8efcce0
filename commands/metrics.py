"""`revledger mrr`, `nrr`, `movements`: the metrics, as tables, JSON or CSV."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from commands.options import known_at_option, retention_options, when_option
from commands.output import (
    caption,
    emit_csv,
    emit_json,
    emit_table,
    flat_manifest,
    format_option,
    working,
)
from projections.movements import KINDS
from projections.periods import Period
from services.present import percent


def _scalar(fmt: str, report: dict[str, Any], title: str) -> None:
    """A single result: JSON as the contract has it, CSV as one row, or a two-column table."""
    if fmt == "json":
        emit_json(report)
        return
    fields = {k: v for k, v in report.items() if k != "manifest"}
    report = {**fields, **flat_manifest(report["manifest"])}
    flat = {k: (";".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v)
            for k, v in report.items()}
    if fmt == "csv":
        emit_csv(list(flat), [flat])
        return
    rows = [{"figure": k, "value": "" if v is None else v} for k, v in flat.items()
            if not k.endswith("_exact")]
    emit_table(["figure", "value"], rows, title=title)


@click.command()
@when_option("--at", "MRR at:")
@known_at_option
@format_option
@click.pass_obj
def mrr(db: str, at: date, known_at: str | None, fmt: str) -> None:
    """Monthly recurring revenue at the end of a date, and paying customers."""
    # Imported here, not at the top: `revledger --help` and other commands start faster.
    from services.metrics import mrr_report

    with working("reading the projection" + (" as known then" if known_at else "")):
        report = mrr_report(db, at, known_at)
    _scalar(fmt, report, f"MRR at the end of {at}")


@click.command()
@retention_options
@format_option
@click.pass_obj
def nrr(db: str, start: date, end: date, cohort: Period | None, segment: dict[str, str],
        known_at: str | None, fmt: str) -> None:
    """Net and gross revenue retention of the customers paying at the start."""
    if end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    from services.metrics import nrr_report

    with working("reading the projection" + (" as known then" if known_at else "")):
        report = nrr_report(db, start, end, cohort, segment, known_at)
    if fmt == "table":
        report = {**report, "nrr": percent(report["nrr_exact"]),
                  "grr": percent(report["grr_exact"])}
    _scalar(fmt, report, f"Retention {start} -> {end}")


@click.command()
@when_option("--start", "First month:", grain="month")
@when_option("--end", "Last month (inclusive):", grain="month")
@known_at_option
@format_option
@click.pass_obj
def movements(db: str, start: date, end: date, known_at: str | None, fmt: str) -> None:
    """Monthly MRR movements (new, expansion, contraction, churn, reactivation).

    Each month compares every customer's MRR at the end of the month before with its MRR
    at the end of the month (month-end snapshots, not event-level changes).
    """
    if end < start:
        raise click.BadParameter("the end month is before the start month", param_hint="--end")
    from services.metrics import movements_report

    with working("reading the projection" + (" as known then" if known_at else "")):
        report = movements_report(db, start, end, known_at)
    if fmt == "json":
        emit_json(report)
    elif fmt == "csv":
        columns = ["month"] + [c for k in KINDS for c in (k, f"{k}_exact")]
        emit_csv(columns, report["months"])
    else:
        emit_table(["month", *KINDS], report["months"], title="MRR movements",
                   caption=caption(report["manifest"]))
