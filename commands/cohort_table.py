"""The cohort triangle as text that fits the terminal: short labels, whole percentages,
one line per cohort. Ages that do not fit beside the labels continue in another block
below (the cohort labels repeated), so no cell ever wraps."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from commands.cohort_labels import age_label, short_label, short_money


def cell(value: str | None) -> str:
    """A retention as a whole percentage, half-even; `-` for a cohort nobody is in."""
    return "-" if value is None else f"{round(Fraction(value) * 100)}%"


def cohort_lines(report: dict[str, Any], width: int, title: str, caption: str) -> list[str]:
    cohorts = report["cohorts"]
    grain = report["grain"]
    ages = max((len(c["ages"]) for c in cohorts), default=0)
    labels = [short_label(c["cohort"], grain) for c in cohorts]
    counts = [str(c["customers"]) for c in cohorts]
    money = [short_money(Fraction(c["starting_mrr_exact"])) for c in cohorts]
    cells = [[cell(v) for v in c["ages_exact"]] for c in cohorts]
    heads = [age_label(k, grain) for k in range(ages)]
    w_label = max([len("cohort"), *map(len, labels)])
    w_count = max([len("custs"), *map(len, counts)])
    w_money = max([len("start"), *map(len, money)])
    w_cell = 1 + max([4, *(len(h) for h in heads), *(len(t) for row in cells for t in row)])
    fixed = w_label + 1 + w_count + 1 + w_money
    per_block = max(1, (width - fixed) // w_cell)
    lines = [title[:width]]
    for first in range(0, max(ages, 1), per_block):
        block = range(first, min(first + per_block, ages))
        if first:
            lines.append("")
        lines.append(f"{'cohort':<{w_label}} {'custs':>{w_count}} {'start':>{w_money}}"
                     + "".join(f"{heads[k]:>{w_cell}}" for k in block))
        for i in (i for i in range(len(cohorts)) if len(cells[i]) > first):
            lines.append(f"{labels[i]:<{w_label}} {counts[i]:>{w_count}} {money[i]:>{w_money}}"
                         + "".join(f"{cells[i][k] if k < len(cells[i]) else '':>{w_cell}}"
                                   for k in block).rstrip())
    lines.append(caption[:width])
    return lines
