"""Short labels for cohort tables and heatmaps: `Jul'23`, `Q3'23`, `2023`; ages `m0`,
`q1`, `y2`. The full labels (`2023-07`) stay in JSON and CSV."""

from __future__ import annotations

from fractions import Fraction

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def short_label(label: str, grain: str) -> str:
    if grain == "month":
        return f"{MONTHS[int(label[5:7]) - 1]}'{label[2:4]}"
    if grain == "quarter":
        return f"{label[5:7]}'{label[2:4]}"
    return label


def age_label(age: int, grain: str) -> str:
    return f"{grain[0]}{age}"


def short_money(units: Fraction) -> str:
    """An amount in a few characters: 950, 12.3k, 4.5M, 1.2B."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(units) >= scale:
            return f"{round(units / scale, 1)}{suffix}".replace(".0" + suffix, suffix) \
                if abs(units) < 100 * scale else f"{round(units / scale)}{suffix}"
    return str(round(units))
