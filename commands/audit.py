"""`revledger history` and `revledger explain`: tracing figures to the events behind them."""

from __future__ import annotations

from datetime import date

import click

from commands.options import known_at_option, retention_options
from commands.output import caption, emit_csv, emit_json, emit_table, format_option, working
from commands.restate import emit_since, from_option, since
from projections.periods import Period

HISTORY_COLUMNS = ("position", "effective_at", "recorded_at", "type", "event_id",
                   "subscription_id", "voids", "voided_by", "voided_at", "mrr_after")
HISTORY_TABLE = ("position", "effective_at", "recorded_at", "type", "event_id", "voided_by",
                 "mrr_after")


def _seconds(instant: str | None) -> str | None:
    """For tables: `2024-01-15T08:00:00.000000Z` as `2024-01-15 08:00:00`."""
    return None if instant is None else instant[:19].replace("T", " ")
EXPLAIN_COLUMNS = ("customer_id", "starting_mrr", "ending_mrr", "category", "event_ids")


@click.command()
@click.option("--customer", required=True, help="The customer's id.")
@known_at_option
@format_option
@click.pass_obj
def history(db: str, customer: str, known_at: str | None, fmt: str) -> None:
    """A customer's events in effective order, with when each was recorded, which were
    voided (by which event, when), and the customer's MRR once each applied."""
    from services.audit import customer_history

    report = customer_history(db, customer, known_at)
    if fmt == "json":
        emit_json(report)
    elif fmt == "csv":
        emit_csv([*HISTORY_COLUMNS, "mrr_after_exact"], report["events"])
    else:
        rows = [{**e, "effective_at": _seconds(e["effective_at"]),
                 "recorded_at": _seconds(e["recorded_at"]),
                 "type": e["type"].removeprefix("subscription.")} for e in report["events"]]
        emit_table(HISTORY_TABLE, rows, title=f"Customer {customer}",
                   caption=caption(report["manifest"]))


@click.group()
def explain() -> None:
    """Trace a figure to the customers and events behind it."""


@explain.command("nrr")
@retention_options
@from_option
@format_option
@click.pass_obj
def explain_nrr(db: str, start: date, end: date, cohort: Period | None,
                segment: dict[str, str], known_at: str | None, known_from: str | None,
                fmt: str) -> None:
    """One row per cohort customer of `revledger nrr` with the same options: MRR at start
    and end, category, and the events that moved its MRR in the period. The rows add up
    to the `nrr` figures exactly."""
    if end < start:
        raise click.BadParameter("the end is before the start", param_hint="--end")
    from services.audit import explain_nrr_report

    with working("reading the projection" + (" as known then" if known_at else "")):
        report = explain_nrr_report(db, start, end, cohort, segment, known_at)
        changed = since(db, {"start": start, "end": end, "cohort": cohort,
                             "segment": segment}, known_from, known_at, fmt)
    if changed is not None:
        report["since"] = changed
    rows = [{**row, "event_ids": " ".join(row["event_ids"])} for row in report["customers"]]
    if fmt == "json":
        emit_json(report)
    elif fmt == "csv":
        emit_csv(["customer_id", "starting_mrr", "starting_mrr_exact", "ending_mrr",
                  "ending_mrr_exact", "category", "event_ids"], rows)
    else:
        totals = report["totals"]
        emit_table(EXPLAIN_COLUMNS, rows, title=f"NRR {start} -> {end}: "
                   f"{totals['customers']} customers, NRR {totals['nrr']}, GRR {totals['grr']}",
                   caption=caption(report["manifest"]))
        emit_since(changed)
