"""Projection upkeep: catch-up after ingest, rebuild on demand."""

from __future__ import annotations

import time
from dataclasses import dataclass

from projections.projection import MRRProjection, Progress
from services.ledger import open_ledger


@dataclass(frozen=True)
class RebuildResult:
    events: int
    customers: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Display only."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild_projections(url: str, on_progress: Progress = lambda d, t: None) -> RebuildResult:
    started = time.perf_counter()
    with open_ledger(url) as app:
        head, customers = MRRProjection(app).rebuild(on_progress)
    return RebuildResult(head, customers, time.perf_counter() - started)


def catch_up(url: str, on_progress: Progress = lambda d, t: None) -> int:
    with open_ledger(url) as app:
        return MRRProjection(app).catch_up(on_progress)
