"""Drawing the chart series (matplotlib, no display): MRR, movements, trailing NRR.

Rendering is presentation, like a table: the series come from `services.analysis`,
exact; they become floats only here, to be drawn. Every chart carries axis titles with the
reporting currency and a footer tying it to the ledger (head position, chain hash, known
at), so a printed picture can be traced to the events behind it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from commands.files import written

UP = (("new", "#2e7d32"), ("expansion", "#66bb6a"), ("reactivation", "#a5d6a7"))
DOWN = (("contraction", "#ef9a9a"), ("churn", "#c62828"))
# The NRR bands (services.analysis.BANDS, highest first) are shaded behind the lines.
BAND_COLOURS = ("#e0f2f1", "#e8f5e9", "#f1f8e9", "#fff8e1", "#fdecea")
FORMATS = ("png", "svg", "pdf")
MAX_TICKS = 24  # month labels on the x axis at most, so they never overlap
LABEL_GAP = 0.06  # band labels at least this far apart, in fractions of the axes' height


def chart_format(out: Path) -> str:
    """The format named by the file's extension."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the chart format from {out.name!r}: name the file "
                         "*.png, *.svg or *.pdf")
    return suffix


def figure_for(series: dict[str, Any], min_customers: int = 10) -> Any:
    """The chart as a matplotlib Figure (not yet written anywhere)."""
    from matplotlib.figure import Figure

    if series["kind"] == "cohorts":
        from commands.heatmap import draw_heatmap

        figure = Figure(figsize=(10, 7.5), dpi=120)
        draw_heatmap(figure, series)
    else:
        figure = Figure(figsize=(10, 5.5), dpi=120)
        axes = figure.add_subplot()
        draw = {"mrr": _mrr, "movements": _movements}.get(series["kind"])
        if draw:
            draw(axes, series)
        else:
            _nrr(axes, series, min_customers)
        axes.set_xlabel("month (figures at each month's end, UTC)")
        months = [p["month"] for p in series["points"]]
        step = -(-len(months) // MAX_TICKS)  # every month up to 24, then every 2nd, ...
        axes.set_xticks(range(0, len(months), step), months[::step])
        axes.tick_params(axis="x", labelrotation=45)
        axes.grid(axis="y", alpha=0.3)
    footer(figure, series["manifest"])
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return figure


def save(figure: Any, out: Path) -> None:
    """Write the figure in the format of `out`'s extension; no timestamps in SVG or PDF,
    so the same ledger draws the same file."""
    import matplotlib

    fmt = chart_format(out)
    metadata = {"Date": None} if fmt in ("svg", "pdf") else None
    with written(out) as partial, matplotlib.rc_context({"svg.hashsalt": "revledger"}):
        figure.savefig(partial, format=fmt, metadata=metadata)


def footer(figure: Any, manifest: dict[str, Any]) -> None:
    head = manifest["ledger_head"]
    text = ("empty ledger" if head is None else
            f"ledger head {head['position']} (chain sha256 {head['chain_sha256'][:16]}), "
            f"as known at {manifest['known_at']}")
    figure.text(0.01, 0.01, f"revledger · {text}", fontsize="x-small", color="#555555",
                ha="left", va="bottom")


def _money_axis(axes: Any, currency: str, what: str) -> None:
    from matplotlib.ticker import FuncFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_ylabel(f"{what} ({currency})")


def _units(cents: Fraction) -> float:
    return float(cents / 100)


def _mrr(axes: Any, series: dict[str, Any]) -> None:
    points = series["points"]
    axes.plot([p["month"] for p in points], [_units(p["mrr"]) for p in points], marker="o",
              color="#1565c0")
    _money_axis(axes, series["currency"], "MRR")
    axes.set_title("MRR at month end")


def _movements(axes: Any, series: dict[str, Any]) -> None:
    points = series["points"]
    months = [p["month"] for p in points]
    below = [0.0] * len(points)
    above = [0.0] * len(points)
    for name, colour in UP:
        values = [_units(p[name]) for p in points]
        axes.bar(months, values, bottom=above, color=colour, label=name)
        above = [a + v for a, v in zip(above, values, strict=True)]
    for name, colour in DOWN:
        values = [-_units(p[name]) for p in points]
        axes.bar(months, values, bottom=below, color=colour, label=name)
        below = [b + v for b, v in zip(below, values, strict=True)]
    # contract v2: exchange rates' own effect, up or down, apart from the customers'
    fx = [_units(p.get("fx", 0)) for p in points]
    axes.bar(months, fx, bottom=[a if v >= 0 else b for v, a, b in zip(fx, above, below,
                                                                       strict=True)],
             color="#9e9e9e", hatch="//", label="fx (exchange rates)")
    above = [a + max(v, 0) for a, v in zip(above, fx, strict=True)]
    below = [b + min(v, 0) for b, v in zip(below, fx, strict=True)]
    net = [a + b for a, b in zip(above, below, strict=True)]
    axes.plot(months, net, color="black", marker="o", label="net new MRR")
    axes.axhline(0, color="grey", linewidth=0.8)
    _money_axis(axes, series["currency"], "MRR moved in the month")
    axes.set_title("MRR movements by month (month-end snapshots)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _nrr(axes: Any, series: dict[str, Any], min_customers: int) -> None:
    """NRR and GRR lines over the points with at least `min_customers` customers; the
    others are hollow markers, held at the scale's edge (a triangle) when outside it: one
    customer's doubling must not flatten every other point."""
    from matplotlib.ticker import PercentFormatter

    points = series["points"]
    months = [p["month"] for p in points]
    solid = {i for i, p in enumerate(points)
             if p["nrr"] is not None and p["customers"] >= min_customers}
    values = [float(points[i][k]) for i in solid for k in ("nrr", "grr")]
    low, high = min([*values, 0.9]) - 0.05, max([*values, 1.35]) + 0.05
    band_labels(axes, low, high)
    for name, colour in (("nrr", "#1565c0"), ("grr", "#ef6c00")):
        axes.plot(months, [float(p[name]) if i in solid else None
                           for i, p in enumerate(points)],
                  marker="o", color=colour, label=name.upper() + " (trailing 12 months)")
        few = [(p["month"], float(p[name])) for i, p in enumerate(points)
               if p[name] is not None and i not in solid]
        for marker, keep in (("o", lambda v: low <= v <= high), ("^", lambda v: v > high),
                             ("v", lambda v: v < low)):
            shown = [(m, min(max(v, low), high)) for m, v in few if keep(v)]
            if shown:
                axes.scatter([m for m, _ in shown], [v for _, v in shown], marker=marker,
                             facecolors="none", edgecolors=colour, zorder=3,
                             clip_on=False)
    if any(p["nrr"] is not None and i not in solid for i, p in enumerate(points)):
        axes.scatter([], [], marker="o", facecolors="none", edgecolors="grey",
                     label=f"fewer than {min_customers} customers (hollow; ▲▼ off scale)")
    axes.set_xlim(-0.5, len(months) - 0.5)
    axes.set_ylim(low, high)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylabel(f"retained MRR, % of starting MRR ({series['currency']})")
    axes.set_title("Net and gross revenue retention, trailing 12 months")
    axes.legend(loc="best", fontsize="small")


def band_labels(axes: Any, low: float, high: float) -> list[Any]:
    """Shade the benchmark bands within [low, high] and name each beside the axes, right
    of the plot, at its band's middle; labels closer than `LABEL_GAP` are pushed apart
    (a thin band's label moves, never onto another)."""
    from services.analysis import BANDS

    uppers = (10.0, *(float(bound) for bound, _ in BANDS))
    shown = []
    for (bound, label), hi, colour in zip(BANDS, uppers, BAND_COLOURS, strict=False):
        lo = max(float(bound), low)
        top = min(hi, high)
        if top > lo:
            axes.axhspan(lo, top, color=colour, zorder=0)
            shown.append((((lo + top) / 2 - low) / (high - low), label))
    positions = spread([y for y, _ in sorted(shown)], LABEL_GAP)
    return [axes.text(1.01, y, label, transform=axes.transAxes, ha="left", va="center",
                      fontsize="x-small", color="#444444")
            for y, (_, label) in zip(positions, sorted(shown), strict=True)]


def spread(wanted: list[float], gap: float) -> list[float]:
    """Positions in [0, 1], ascending like `wanted`, at least `gap` apart, each as near
    its wanted place as pushing up, then down from the top, allows."""
    out: list[float] = []
    for y in wanted:
        out.append(max(y, out[-1] + gap) if out else max(y, 0.0))
    ceiling = 1.0
    for i in range(len(out) - 1, -1, -1):
        out[i] = min(out[i], ceiling)
        ceiling = out[i] - gap
    return out
