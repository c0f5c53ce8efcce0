"""The analyst's views: cohort triangles and the one-screen report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from projections.cohorts import triangle
from projections.periods import periods
from services.metrics import engine
from services.present import decimal_text, exact_text, money


def cohorts_report(
    url: str,
    first: date,
    last: date,
    grain: str,
    metric: str,
    segment: Mapping[str, str] | None = None,
    known_at: str | None = None,
) -> dict[str, Any]:
    with engine(url, known_at) as (e, reflects):
        rows = triangle(e, periods(first, last, grain), metric, segment)
    return {
        "grain": grain,
        "metric": metric,
        "segment": dict(segment or {}),
        "cohorts": [
            {
                "cohort": row.cohort,
                "customers": row.customers,
                **money("starting_mrr", row.starting_mrr),
                "ages": [None if v is None else decimal_text(v, 6) for v in row.ages],
                "ages_exact": [None if v is None else exact_text(v) for v in row.ages],
            }
            for row in rows
        ],
        "manifest": reflects,
    }
