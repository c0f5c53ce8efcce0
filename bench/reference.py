"""A yardstick for this machine's speed at the moment: eventsourcing alone appending
100,000 events to SQLite (20,000 aggregates of 5 events, made beforehand; 500 aggregates
per save), the set-up of the ~35,000 events/s in ../shared/notes/eventsourcing-facts.md.

Run next to an ingest, it tells a slow spell of the machine from a slow change of ours.

    .venv/bin/python bench/reference.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

AGGREGATES, EVENTS_EACH, PER_SAVE = 20_000, 5, 500


class Counter(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0

    @event("Counted")
    def count(self, by: int) -> None:
        self.total += by


def append_rate() -> float:
    """Events per second of `save()`, the aggregates and their events made beforehand."""
    counters = []
    for i in range(AGGREGATES):
        counter = Counter(f"c{i}")
        for by in range(1, EVENTS_EACH):
            counter.count(by)
        counters.append(counter)
    with tempfile.TemporaryDirectory() as tmp:
        app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(Path(tmp) / "reference.db")})
        started = time.perf_counter()
        for first in range(0, AGGREGATES, PER_SAVE):
            app.save(*counters[first:first + PER_SAVE])
        return AGGREGATES * EVENTS_EACH / (time.perf_counter() - started)


if __name__ == "__main__":
    print(f"eventsourcing alone, {AGGREGATES * EVENTS_EACH:,} events into SQLite "
          f"({PER_SAVE} aggregates per save): {append_rate():,.0f} events/s")
