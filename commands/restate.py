"""`revledger restate nrr|mrr|movements`: a figure as originally reported, each adjustment
since, and the figure as restated."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from commands.options import nrr_options, parser, when_option
from commands.output import caption, emit_csv, emit_json, emit_table, format_option, working
from projections.periods import Period, parse_known_at


def _instants(function: Any) -> Any:
    function = click.option(
        "--to", "known_to", callback=parser(parse_known_at), metavar="INSTANT",
        help="As restated: known at this instant (default: now).")(function)
    return click.option(
        "--from", "known_from", required=True, callback=parser(parse_known_at),
        metavar="INSTANT", help="As originally reported: known at this instant (RFC 3339, "
        "or a date = its end).")(function)


@click.group()
def restate() -> None:
    """Bridge a figure as known at --from to the same figure as known at --to: as
    originally reported, one adjustment per customer whose share changed (the events
    recorded in between that moved it, and the category it moved from and to), as
    restated. Original + the adjustments = restated, exactly, for every field."""


@restate.command("nrr")
@nrr_options
@_instants
@format_option
@click.pass_obj
def restate_nrr(db: str, start: date, end: date, cohort: Period | None,
                segment: dict[str, str], known_from: str, known_to: str | None,
                fmt: str) -> None:
    """NRR, GRR and their parts, bridged."""
    _run(db, "nrr", {"start": start, "end": end, "cohort": cohort, "segment": segment},
         known_from, known_to, fmt)


@restate.command("mrr")
@when_option("--at", "At:")
@_instants
@format_option
@click.pass_obj
def restate_mrr(db: str, at: date, known_from: str, known_to: str | None, fmt: str) -> None:
    """MRR at a date and paying customers, bridged."""
    _run(db, "mrr", {"at": at}, known_from, known_to, fmt)


@restate.command("movements")
@when_option("--start", "First month:", grain="month")
@when_option("--end", "Last month (inclusive):", grain="month")
@_instants
@format_option
@click.pass_obj
def restate_movements(db: str, start: date, end: date, known_from: str,
                      known_to: str | None, fmt: str) -> None:
    """Every month's movements (each cell: month.kind), bridged."""
    if end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    _run(db, "movements", {"first": start, "last": end}, known_from, known_to, fmt)


def _run(db: str, figure: str, options: dict[str, Any], known_from: str,
         known_to: str | None, fmt: str) -> None:
    from services.restate import restate as bridge

    with working("reading both sides"):
        report = bridge(db, figure, options, known_from, known_to)
    if fmt == "json":
        emit_json(report)
        return
    _emit(report, fmt)


def _emit(report: dict[str, Any], fmt: str) -> None:
    fields = [k for k in report["original"] if not k.endswith("_exact")]
    changed = [k for k in fields if report["original"][k] != report["restated"][k]
               or any(k in a["changes"] for a in report["adjustments"])]
    rows = [{"line": "as originally reported", **report["original"]}]
    for a in report["adjustments"]:
        rows.append({"line": "adjustment", "customer_id": a["customer_id"],
                     "moved": "; ".join(f"{m['what']}: {m['before']} -> {m['after']}"
                                        for m in a["moved"]),
                     "event_ids": " ".join(a["event_ids"]),
                     **{k: a["changes"].get(k, "") for k in fields}})
    rows.append({"line": "as restated", **report["restated"]})
    columns = ["line", "customer_id", "moved", "event_ids"]
    if fmt == "csv":
        emit_csv([*columns, *fields], rows)
        return
    emit_table([*columns, *(changed or fields)], rows,
               title=f"{report['figure']} as known at {report['from']} -> at {report['to']}",
               caption=f"original: {caption(report['manifests']['original'])}\nrestated: "
               f"{caption(report['manifests']['restated'])}")



def from_option(function: Any) -> Any:
    """`--from` for `report` and `explain nrr`: what changed since a previous report."""
    return click.option(
        "--from", "known_from", callback=parser(parse_known_at), metavar="INSTANT",
        help="Also show what changed since the report as known at this instant: the bridge "
        "`revledger restate nrr` prints for the same period (json and table only).")(function)


def since(db: str, options: dict[str, Any], known_from: str | None, known_at: str | None,
          fmt: str) -> dict[str, Any] | None:
    """The NRR bridge from `known_from` to what the report reflects, or None."""
    if known_from is None:
        return None
    if fmt == "csv":
        raise click.UsageError("--from needs --format json or table; for CSV, run "
                               "`revledger restate nrr`")
    from services.restate import restate as bridge

    return bridge(db, "nrr", options, known_from, known_at)


def emit_since(report: dict[str, Any] | None) -> None:
    """The bridge as a table, below a report's."""
    if report is not None:
        _emit(report, "table")
