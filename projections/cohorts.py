"""Vintage triangles: each cohort of customers by first paid period, followed over time.

A cohort is the customers whose first paid instant lies in period P and who pay at the
end of P (its starting MRR is theirs then). Age k is the end of the k-th period after P.
The cells are retention of that cohort from the end of P to age k, as `nrr --cohort P`
computes it: NRR (their MRR at age k / starting MRR), GRR (each customer capped at its
starting MRR) or logos (customers still paying / customers). Age 0 is 1 by definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from projections.nrr import Retention
from projections.periods import Period

METRICS = ("nrr", "grr", "logos")


class RetentionEngine(Protocol):
    def nrr(self, start: str, end: str, cohort: Period | None,
            segment: Mapping[str, str] | None) -> Retention: ...


@dataclass(frozen=True)
class CohortRow:
    cohort: str
    customers: int
    starting_mrr: Fraction
    ages: tuple[Fraction | None, ...]  # age 0, 1, ... up to the last period


def triangle(
    engine: RetentionEngine,
    vintages: list[Period],
    metric: str,
    segment: Mapping[str, str] | None = None,
) -> list[CohortRow]:
    """One row per vintage; row i has len(vintages) - i ages."""
    rows = []
    for i, vintage in enumerate(vintages):
        ages = [engine.nrr(vintage.end, later.end, vintage, segment) for later in vintages[i:]]
        base = ages[0]
        rows.append(CohortRow(vintage.label, base.customers, base.starting_mrr,
                              tuple(_cell(r, metric) for r in ages)))
    return rows


def _cell(r: Retention, metric: str) -> Fraction | None:
    if metric == "logos":
        return Fraction(r.customers - r.churned, r.customers) if r.customers else None
    return r.grr if metric == "grr" else r.nrr
