"""Where SQLite ingest's time goes: each step it cannot skip, timed alone (CPU seconds).

    .venv/bin/python bench/floors.py [--customers 20000]

Ingests the benchmark feed once (into a temporary directory), then times alone, with the
garbage collector off as in ingest: decoding, validating and hashing the lines (the
checking process's part); building eventsourcing's domain events and stored events, and
the hash chain (the recording process's Python); and writing the very rows stored, into
a new ledger file, with and without the customer index. The recording process does
the last four in turn, besides deciding: their sum bounds what one writer can record per
second.
"""

from __future__ import annotations

import gc
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson
from run import feed_for  # bench/run.py, beside this script

from ledger.aggregates import (
    Recorded,
    Subscription,
    stream_event,
    subscription_uuid,
)
from ledger.chain import extend
from ledger.events import content_hash, parse_event
from ledger.feed import numbered_lines
from ledger.ingest import BATCH_SIZE, Ingestor
from ledger.instants import format_instant
from ledger.store import LedgerApplication


def timed(label: str, step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = step()
    seconds = time.process_time() - started
    click.echo(f"  {label:<52} {seconds:6.2f} s")
    return seconds, result


def rewrite(rows: dict[str, list[tuple]], path: Path, customer_index: bool) -> None:
    """The stored rows written again into a new ledger, a batch per transaction."""
    LedgerApplication(f"sqlite:///{path}")  # the ledger's tables, pages and settings
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA cache_size = -65536")
    db.execute("PRAGMA synchronous = NORMAL")
    if not customer_index:
        db.execute("DROP INDEX event_keys_customer")
    events, links, keys = rows["events"], rows["links"], rows["keys"]
    for i in range(0, len(keys), BATCH_SIZE):
        db.execute("BEGIN")
        db.executemany("INSERT INTO stored_events (originator_id, originator_version, topic, "
                       "state) VALUES (?, ?, ?, ?)", events[i:i + BATCH_SIZE])
        db.executemany("INSERT INTO event_chain VALUES (?, ?, ?)", links[i:i + BATCH_SIZE])
        db.executemany(f"INSERT INTO event_keys VALUES ({', '.join('?' * 8)})",
                       keys[i:i + BATCH_SIZE])
        db.execute("COMMIT")
    db.close()


@click.command()
@click.option("--customers", default=20_000, show_default=True)
def main(customers: int) -> None:
    feed = feed_for(customers)
    lines = [raw for _, raw in numbered_lines(feed.open("rb")) if raw.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.db"
        app = LedgerApplication(f"sqlite:///{ledger}")
        Ingestor(app).ingest(numbered_lines(feed.open("rb")))
        db = sqlite3.connect(ledger)
        rows = {  # the ledger's own first event (its currency) is left out
            "events": db.execute("SELECT originator_id, originator_version, topic, state "
                                 "FROM stored_events WHERE rowid > 1 ORDER BY rowid").fetchall(),
            "links": db.execute("SELECT * FROM event_chain WHERE position > 1 "
                                "ORDER BY position").fetchall(),
            "keys": db.execute("SELECT * FROM event_keys ORDER BY rowid").fetchall(),
        }
        db.close()
        n = len(rows["keys"])
        click.echo(f"{len(lines):,} lines, {n:,} events stored ({customers:,} customers)")
        gc.disable()
        click.echo("checking process")
        _, payloads = timed("JSON decoding", lambda: [orjson.loads(raw) for raw in lines])
        timed("pydantic validation", lambda: [parse_event(p) for p in payloads])
        timed("content hashes", lambda: [content_hash(p) for p in payloads])
        click.echo("recording process")
        stamp = Recorded.create_timestamp()
        streams = [subscription_uuid(str(i % 50_000)) for i in range(n)]
        events_s, events = timed("domain events (eventsourcing)", lambda: [
            stream_event(Subscription, stream, 2, stamp, key="-", customer_id="-",
                         event_id=str(i), type="subscription.changed", effective_at=None,
                         payload=orjson.Fragment(raw))
            for i, (stream, raw) in enumerate(zip(streams, lines, strict=False))])
        mapped_s, stored = timed("stored events (eventsourcing's mapper)",
                                 lambda: [app.mapper.to_stored_event(e) for e in events])
        recorded = format_instant(stamp)
        chain_s, _ = timed("hash chain", lambda: list(extend(None, (
            (p, s.originator_id, s.originator_version, s.topic, s.state, recorded)
            for p, s in enumerate(stored, start=2)))))
        writes_s, _ = timed("SQLite writes, customer index included",
                            lambda: rewrite(rows, Path(tmp) / "with.db", True))
        bare_s, _ = timed("SQLite writes, without the customer index",
                          lambda: rewrite(rows, Path(tmp) / "without.db", False))
        serial = events_s + mapped_s + chain_s
        click.echo(f"one writer, deciding not counted: at most {n / (serial + writes_s):,.0f} "
                   f"events/s ({n / (serial + bare_s):,.0f} without the customer index)")


if __name__ == "__main__":
    main()
