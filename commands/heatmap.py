"""`chart cohorts`: the vintage triangle as a heatmap, one row per cohort, one column per
age, each cell coloured by its retention (and printed, where the cells are big enough)."""

from __future__ import annotations

from typing import Any

from commands.cohort_labels import age_label, short_label

PRINTED_UP_TO = 30  # cells are labelled with their percentage up to this many ages
MAX_LABELS = 30  # age and cohort labels on each axis at most


def draw_heatmap(figure: Any, series: dict[str, Any]) -> None:
    import numpy as np
    from matplotlib.colors import Normalize, TwoSlopeNorm
    from matplotlib.ticker import PercentFormatter

    cohorts = series["cohorts"]
    width = max((len(c["ages"]) for c in cohorts), default=0)
    grid = np.full((len(cohorts), max(width, 1)), np.nan)
    for i, c in enumerate(cohorts):
        for k, value in enumerate(c["ages"]):
            if value is not None:
                grid[i, k] = float(value) * 100
    axes = figure.add_subplot()
    finite = grid[np.isfinite(grid)]
    top = float(finite.max()) if finite.size else 100.0
    low = min(float(finite.min()) if finite.size else 0.0, 99.0)
    # 100% is the middle colour when some cells are above it (NRR); otherwise (GRR, logos
    # never exceed it) the scale runs from the lowest cell up to 100%, green.
    norm = (TwoSlopeNorm(vcenter=100.0, vmin=low, vmax=top) if top > 100
            else Normalize(vmin=low, vmax=100.0))
    image = axes.imshow(grid, cmap="RdYlGn", aspect="auto", interpolation="nearest",
                        norm=norm)
    colour_bar = figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02,
                                 format=PercentFormatter(100.0, decimals=0))
    colour_bar.set_label(f"{series['metric'].upper()}, % of the cohort's starting "
                         + ("customers" if series["metric"] == "logos"
                            else f"MRR ({series['currency']})"))
    grain = series["grain"]
    across, down = -(-width // MAX_LABELS), -(-len(cohorts) // MAX_LABELS)  # never overlap
    axes.set_xticks(range(0, width, across),
                    [age_label(k, grain) for k in range(0, width, across)], fontsize="small")
    axes.set_yticks(range(0, len(cohorts), down),
                    [f"{short_label(c['cohort'], grain)} ({c['customers']})"
                     for c in cohorts[::down]], fontsize="small")
    axes.set_xlabel(f"age ({grain}s after the cohort's {grain})")
    axes.set_ylabel("cohort: first paid " + grain + " (customers)")
    axes.set_title(f"{series['metric'].upper()} by {grain} cohort")
    if width <= PRINTED_UP_TO:
        size = 7 if width <= 12 else 5
        for i, k in zip(*np.nonzero(np.isfinite(grid)), strict=True):
            shade = image.norm(grid[i, k])
            axes.text(k, i, f"{grid[i, k]:.0f}", ha="center", va="center", fontsize=size,
                      color="white" if shade < 0.15 or shade > 0.85 else "black")
