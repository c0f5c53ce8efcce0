"""`revledger chart`: MRR, movements, trailing NRR and the cohort heatmap as PNG, SVG or
PDF (the format from `--out`'s extension). Drawing lives in `commands.chart_render`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from commands.options import known_at_option, when_option
from commands.output import working
from projections.periods import GRAINS

MIN_CUSTOMERS = 10


@click.command()
@click.argument("kind", type=click.Choice(["nrr", "movements", "mrr", "cohorts"]))
@when_option("--start", "First month (cohorts: the first cohort's):", grain="month")
@when_option("--end", "Last month (inclusive):", grain="month")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write: *.png, *.svg or *.pdf.")
@click.option("--min-customers", type=click.IntRange(min=1), default=MIN_CUSTOMERS,
              show_default=True, help="nrr: a point over fewer customers is drawn hollow "
              "and does not set the scale.")
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True,
              help="cohorts: cohort and age period.")
@click.option("--metric", type=click.Choice(["nrr", "grr", "logos"]), default="nrr",
              show_default=True, help="cohorts: net, gross or logo retention.")
@known_at_option
@click.pass_obj
def chart(db: str, kind: str, start: date, end: date, out: Path, min_customers: int,
          grain: str, metric: str, known_at: str | None) -> None:
    """Draw KIND: `nrr` (trailing-12-month NRR and GRR against the benchmark bands),
    `movements` (monthly new, expansion, reactivation up; contraction, churn down; FX, the
    exchange rates' own effect, either way; net new MRR), `mrr` (MRR at each month end) or
    `cohorts` (the vintage triangle as a heatmap). The footer names the ledger head and the
    instant the figures are as known at."""
    if end < start:
        raise click.BadParameter("the end month is before the start month", param_hint="--end")
    from commands.chart_render import chart_format, figure_for, save
    from services.analysis import chart_series

    try:
        chart_format(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    with working(f"drawing {kind}"):
        series = chart_series(db, kind, start, end, known_at, grain, metric)
        save(figure_for(series, min_customers), out)
    click.echo(f"wrote {out}", err=True)
