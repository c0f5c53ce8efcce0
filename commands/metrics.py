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
@click.option("--by", "by", metavar="KEY",
              help="One row per value of this attribute at the start (each as --segment "
                   "KEY=VALUE answers), then the customers without it.")
@format_option
@click.pass_obj
def nrr(db: str, start: date, end: date, cohort: Period | None, segment: dict[str, str],
        known_at: str | None, by: str | None, fmt: str) -> None:
    """Net and gross revenue retention of the customers paying at the start."""
    if end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    if by is not None and by in segment:
        raise click.BadParameter(f"--segment already fixes {by}", param_hint="--by")
    from services.metrics import nrr_by_report, nrr_report

    if by is not None:
        with working("reading the projection" + (" as known then" if known_at else "")):
            _by(fmt, nrr_by_report(db, start, end, by, cohort, segment, known_at))
        return
    with working("reading the projection" + (" as known then" if known_at else "")):
        report = nrr_report(db, start, end, cohort, segment, known_at)
    if fmt == "table":
        report = {**report, "nrr": percent(report["nrr_exact"]),
                  "nrr_constant_currency": percent(report["nrr_constant_currency_exact"]),
                  "grr": percent(report["grr_exact"])}
    _scalar(fmt, report, f"Retention {start} -> {end}")


@click.command()
@when_option("--start", "First month:", grain="month")
@when_option("--end", "Last month (inclusive):", grain="month")
@known_at_option
@format_option
@click.pass_obj
def movements(db: str, start: date, end: date, known_at: str | None, fmt: str) -> None:
    """Monthly MRR movements (new, expansion, contraction, churn, reactivation, fx).

    Each month compares every customer's MRR at the end of the month before with its MRR
    at the end of the month (month-end snapshots, not event-level changes), both at the
    month before's exchange rates; fx is what the rates' own change added.
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
        emit_table(["month", *KINDS], report["months"],
                   title=f"MRR movements ({report['reporting_currency']})",
                   caption=caption(report["manifest"]))


def _by(fmt: str, report: dict[str, Any]) -> None:
    """`nrr --by`: a row per value, as JSON, CSV or a table."""
    if fmt == "json":
        emit_json(report)
        return
    key = report["by"]
    rows = [{key: row["value"], **row} for row in report["rows"]]
    if fmt == "csv":
        figures = ("starting_mrr", "ending_mrr", "expansion", "contraction", "churn", "nrr",
                   "grr")
        emit_csv([key, "customers", *(c for f in figures for c in (f, f"{f}_exact"))], rows)
        return
    table = [{key: "(not set)" if r["value"] is None else r["value"],
              "customers": r["customers"], "starting_mrr": r["starting_mrr"],
              "ending_mrr": r["ending_mrr"], "nrr": percent(r["nrr_exact"]),
              "grr": percent(r["grr_exact"])} for r in report["rows"]]
    emit_table([key, "customers", "starting_mrr", "ending_mrr", "nrr", "grr"], table,
               title=f"Retention {report['start']} -> {report['end']} by {key}",
               caption=caption(report["manifest"]))


@click.command()
@when_option("--at", "Figures at:", required=False)
@when_option("--start", "Period start:", required=False)
@when_option("--end", "Period end:", required=False)
@known_at_option
@format_option
@click.pass_obj
def metrics(db: str, at: date | None, start: date | None, end: date | None,
            known_at: str | None, fmt: str) -> None:
    """ARR (12 x MRR), customers and ARPA (MRR per paying customer) at --at; or, with
    --start and --end, those at both ends, the logo churn rate of the customers paying at
    the start, and the quick ratio ((new + expansion + reactivation) / (contraction +
    churn)) of the monthly movements of the months after the start's up to the end's."""
    if (at is None) == (start is None and end is None) or (at is None and None in (start, end)):
        raise click.UsageError("give --at DATE, or --start and --end")
    if start is not None and end is not None and end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    from services.metrics import metrics_report

    with working("reading the projection" + (" as known then" if known_at else "")):
        report = metrics_report(db, start, at or end, known_at)  # type: ignore[arg-type]
    if fmt == "table":
        report = {k: (percent(report[f"{k}_exact"]) if k == "logo_churn_rate" else v)
                  for k, v in report.items()}
    title = (f"Metrics at the end of {report['date']}" if at is not None
             else f"Metrics {report['start']} -> {report['end']}")
    _scalar(fmt, report, title)
