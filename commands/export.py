"""`revledger export mrr`: the customer-by-month MRR table for BI tools."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from commands.options import known_at_option, when_option
from commands.output import err, working
from projections.periods import GRAINS


@click.group()
def export() -> None:
    """Export tables for BI tools and spreadsheets."""


@export.command("mrr")
@click.option("--grain", type=click.Choice(["month"]), default="month", show_default=True,
              help="One row per customer and this period.")
@when_option("--start", "First month:", grain="month")
@when_option("--end", "Last month (inclusive):", grain="month")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None,
              help="csv or parquet  [default: from --out's extension, else csv]")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (CSV: the manifest goes to FILE.manifest.json).")
@click.option("--cohort-grain", type=click.Choice(GRAINS), default="month",
              show_default=True, help="The cohort column: first paid month, quarter or year.")
@known_at_option
@click.pass_obj
def export_mrr_command(db: str, grain: str, start: date, end: date, fmt: str | None,
                       out: Path, cohort_grain: str, known_at: str | None) -> None:
    """One row per customer and month in which it paid at the month's start or end: MRR
    at the month's end (exact and rounded), the month before's, the change, the movement
    (new, expansion, contraction, churn, reactivation, or empty), first paid month,
    cohort and attributes at the month's end. Summed by month and movement, the rows are
    `revledger movements`."""
    if end < start:
        raise click.BadParameter("the end month is before the start month", param_hint="--end")
    fmt = fmt or ("parquet" if out.suffix.lower() == ".parquet" else "csv")
    from commands.export_files import write_csv, write_parquet
    from services.export import export_mrr

    with working("exporting MRR by customer and month"):
        table = export_mrr(db, start, end, cohort_grain, known_at)
        if fmt == "parquet":
            rows = write_parquet(table, out)
            err(f"wrote {rows} rows to {out} (manifest in its metadata: revledger.manifest)")
        else:
            rows, sidecar = write_csv(table, out)
            err(f"wrote {rows} rows to {out}, manifest {sidecar}")
