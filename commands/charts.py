"""`revledger chart`: PNG charts of MRR, movements and trailing NRR (matplotlib, no display).

Rendering is presentation, like a table: the series come from `services.analysis`, exact;
they become floats only here, to be drawn.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from commands.options import known_at_option, parser
from commands.output import working
from projections.periods import parse_month

UP = (("new", "#2e7d32"), ("expansion", "#66bb6a"), ("reactivation", "#a5d6a7"))
DOWN = (("contraction", "#ef9a9a"), ("churn", "#c62828"))
# The NRR bands (services.analysis.BANDS, highest first) are shaded behind the lines.
BAND_COLOURS = ("#e0f2f1", "#e8f5e9", "#f1f8e9", "#fff8e1", "#fdecea")


@click.command()
@click.argument("kind", type=click.Choice(["nrr", "movements", "mrr"]))
@click.option("--start", required=True, callback=parser(parse_month), metavar="YYYY-MM",
              help="First month.")
@click.option("--end", required=True, callback=parser(parse_month), metavar="YYYY-MM",
              help="Last month (inclusive).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The PNG file to write.")
@known_at_option
@click.pass_obj
def chart(db: str, kind: str, start: date, end: date, out: str, known_at: str | None) -> None:
    """Draw KIND to a PNG: `nrr` (trailing-12-month NRR and GRR against the benchmark
    bands), `movements` (monthly new, expansion, reactivation up; contraction, churn down;
    net new MRR) or `mrr` (MRR at each month end)."""
    if end < start:
        raise click.BadParameter("the end month is before the start month", param_hint="--end")
    from services.analysis import chart_series

    with working(f"drawing {kind}"):
        series = chart_series(db, kind, start, end, known_at)
    render(series, Path(out))
    click.echo(f"wrote {out}", err=True)


def render(series: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    points = series["points"]
    months = [p["month"] for p in points]
    figure, axes = plt.subplots(figsize=(10, 5.5), dpi=120)
    money = FuncFormatter(lambda value, _: f"{value:,.0f}")
    if series["kind"] == "mrr":
        axes.plot(months, [float(p["mrr"]) / 100 for p in points], marker="o", color="#1565c0")
        axes.yaxis.set_major_formatter(money)
        axes.set_title("MRR at month end")
    elif series["kind"] == "movements":
        below = [0.0] * len(points)
        above = [0.0] * len(points)
        for name, colour in UP:
            values = [float(p[name]) / 100 for p in points]
            axes.bar(months, values, bottom=above, color=colour, label=name)
            above = [a + v for a, v in zip(above, values, strict=True)]
        for name, colour in DOWN:
            values = [-float(p[name]) / 100 for p in points]
            axes.bar(months, values, bottom=below, color=colour, label=name)
            below = [b + v for b, v in zip(below, values, strict=True)]
        net = [a + b for a, b in zip(above, below, strict=True)]
        axes.plot(months, net, color="black", marker="o", label="net new MRR")
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.yaxis.set_major_formatter(money)
        axes.set_title("MRR movements by month (month-end snapshots)")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        values = [float(v) for p in points for v in (p["nrr"], p["grr"]) if v is not None]
        low, high = min([*values, 0.9]) - 0.05, max([*values, 1.35]) + 0.05
        from services.analysis import BANDS

        uppers = (10.0, *(float(bound) for bound, _ in BANDS))
        for (bound, label), hi, colour in zip(BANDS, uppers, BAND_COLOURS, strict=False):
            lo = float(bound)
            if hi > low and lo < high:
                axes.axhspan(max(lo, low), min(hi, high), color=colour, zorder=0)
                axes.text(0.995, min(hi, high) - 0.005, label, transform=axes.get_yaxis_transform(),
                          ha="right", va="top", fontsize="x-small", color="grey")
        for name, colour in (("nrr", "#1565c0"), ("grr", "#ef6c00")):
            axes.plot(months, [None if p[name] is None else float(p[name]) for p in points],
                      marker="o", color=colour, label=name.upper() + " (trailing 12 months)")
        axes.set_ylim(low, high)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title("Net and gross revenue retention, trailing 12 months")
        axes.legend(loc="best", fontsize="small")
    axes.tick_params(axis="x", labelrotation=45)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)
