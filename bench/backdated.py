"""Webhooks, one event at a time, late: N single-event recordings for ONE customer, each
followed by the projection's catch-up (as `serve` does for each delivery), in a random
effective order (every recording is backdated among the others). Beside it, in the same
run, the yardstick: the same N events delivered in effective order, the path whose cost
never grew with the history. Both in process (no HTTP), on a fresh SQLite ledger; at the
end the view is compared with a rebuild from zero (byte-identical rows).

    .venv/bin/python bench/backdated.py --events 10000 [--pg URL]

Prints, for each run, the seconds spent recording and keeping the projection current, the
projection's cost per recording over the last 1%, and the ratio of the projections' times.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson

from ledger.application import LedgerApplication
from ledger.ingest import Ingestor
from projections.projection import MRRProjection

SUBSCRIPTIONS = 3
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def webhook_events(n: int) -> list[bytes]:
    """N full-state snapshots of a customer's subscriptions, an hour apart in effect."""
    rng = random.Random(27)
    events = []
    for i in range(n):
        events.append(orjson.dumps({
            "event_id": f"evt_{i}", "type": "subscription.snapshot",
            "effective_at": (T0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer_id": "cus_1", "subscription_id": f"sub_{i % SUBSCRIPTIONS}",
            "plan": "pro", "amount": f"{rng.randrange(10, 500)}.00", "currency": "USD",
            "interval": "month", "quantity": rng.randrange(1, 20),
            "status": "inactive" if rng.random() < 0.1 else "active",
        }))
    return events


def deliver(url: str, events: list[bytes]) -> tuple[float, float, float]:
    """Seconds recording one event per transaction, and keeping the projection current
    after each (as `serve` does for each delivery); and the projection's for the last 1%."""
    recording = projecting = tail = 0.0
    with LedgerApplication(url) as app:
        ingestor, projection = Ingestor(app, parallel=False), MRRProjection(app)
        for k, line in enumerate(events):
            started = time.perf_counter()
            summary = ingestor.ingest([(k + 1, line)])
            recorded = time.perf_counter()
            assert summary.accepted == 1, summary
            projection.catch_up()
            done = time.perf_counter()
            recording += recorded - started
            projecting += done - recorded
            if k >= len(events) - max(1, len(events) // 100):
                tail += done - recorded
    return recording, projecting, tail


def same_as_rebuild(url: str) -> bool:
    with LedgerApplication(url) as app:
        projection = MRRProjection(app)
        caught_up = projection.view.stored()
        projection.rebuild()
        return projection.view.stored() == caught_up


@click.command()
@click.option("--events", default=10_000, show_default=True)
@click.option("--pg", default=None, help="a PostgreSQL database URL (emptied!) instead of "
                                        "SQLite files; each run gets a database of its own")
def main(events: int, pg: str | None) -> None:
    in_order = webhook_events(events)
    backdated = in_order[:]
    random.Random(3).shuffle(backdated)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, feed in (("yardstick: in effective order", in_order),
                           ("backdated: random effective order", backdated)):
            url = _fresh(pg, Path(tmp), name.split(":")[0])
            recording, projecting, tail = deliver(url, feed)
            identical = same_as_rebuild(url)
            results[name] = projecting
            click.echo(f"{name:34} {events:,} recordings: recording {recording:6.2f} s, "
                       f"projection {projecting:6.2f} s (last 1%: "
                       f"{tail / max(1, events // 100) * 1000:.2f} ms each); "
                       f"view == rebuild: {identical}")
        ratio = results["backdated: random effective order"] / results[
            "yardstick: in effective order"]
        click.echo(f"projection, backdated / yardstick: {ratio:.2f}")


def _fresh(pg: str | None, tmp: Path, name: str) -> str:
    if pg is None:
        return f"sqlite:///{tmp / name}.db"
    import psycopg

    database = f"bench_backdated_{name}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    return pg.rsplit("/", 1)[0] + "/" + database


if __name__ == "__main__":
    main()
