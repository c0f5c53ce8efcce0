"""Where SQLite ingest's and replay's time goes: each step they cannot skip, timed alone
(CPU seconds, the best of three runs: this machine's timings vary by up to a third).

    .venv/bin/python bench/floors.py [--customers 20000]

Ingests the benchmark feed once (into a temporary directory), then times alone, with the
garbage collector off as in ingest and replay:
- ingest: decoding, validating and hashing the lines (the checking process's part);
  building eventsourcing's domain events and stored events (the deciding process's,
  besides deciding); the hash chain and writing the very rows stored, into a new ledger
  file, with and without the customer index (the writing process's). Half their sum
  bounds what ingest on two cores can do, were they shared perfectly, with no deciding and
  nothing passed between the processes.
- replay: reading each customer's events (customer by customer, so that memory grows
  with customers), decoding them, folding every version, shaping the view's rows, the
  query columns, and writing the rows into a new file. Half their sum bounds what a
  replay on two cores can do, were they shared perfectly with no process start and no
  hand-over between the processes.
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
from eventsourcing.persistence import Tracking
from run import feed_for  # bench/run.py, beside this script

from ledger.aggregates import (
    Recorded,
    Subscription,
    stream_event,
    subscription_uuid,
)
from ledger.application import LedgerApplication
from ledger.chain import extend
from ledger.events import content_hash, parse_event
from ledger.feed import numbered_lines
from ledger.ingest import BATCH_SIZE, Ingestor
from ledger.instants import format_instant
from projections.columns import Columns, MRRColumns
from projections.facts import by_customer_stream
from projections.projection import MRRProjection, gathering
from projections.versions import fold_versions
from projections.view import CustomerRows, customer_rows


def timed(label: str, step: Callable[[], Any]) -> tuple[float, Any]:
    """The best of three runs, and the last one's result."""
    best, result = float("inf"), None
    for _ in range(3):
        result = None  # freed before the clock starts, not inside the next run
        started = time.process_time()
        result = step()
        best = min(best, time.process_time() - started)
    click.echo(f"  {label:<52} {best:6.2f} s")
    return best, result


def fresh(path: Path) -> str:
    """The URL of a new ledger file at `path` (any earlier one removed)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def rewrite(rows: dict[str, list[tuple]], path: Path, customer_index: bool) -> None:
    """The stored rows written again into a new ledger, a batch per transaction."""
    LedgerApplication(fresh(path))  # the ledger's tables, pages and settings
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
        db.executemany(f"INSERT INTO event_keys VALUES ({', '.join('?' * 7)})",
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
        json_s, payloads = timed("JSON decoding", lambda: [orjson.loads(raw) for raw in lines])
        valid_s, _ = timed("pydantic validation", lambda: [parse_event(p) for p in payloads])
        hash_s, _ = timed("content hashes", lambda: [content_hash(p) for p in payloads])
        click.echo("deciding process")
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
        click.echo("writing process")
        chain_s, _ = timed("hash chain", lambda: list(extend(None, (
            (p, s.originator_id.bytes, s.originator_version, s.topic, s.state, recorded)
            for p, s in enumerate(stored, start=2)))))
        writes_s, _ = timed("SQLite writes, customer index included",
                            lambda: rewrite(rows, Path(tmp) / "with.db", True))
        bare_s, _ = timed("SQLite writes, without the customer index",
                          lambda: rewrite(rows, Path(tmp) / "without.db", False))
        steps = json_s + valid_s + hash_s + events_s + mapped_s + chain_s
        click.echo(f"both cores, shared perfectly, no deciding, nothing passed on: at most "
                   f"{n / ((steps + writes_s) / 2):,.0f} events/s "
                   f"({n / ((steps + bare_s) / 2):,.0f} without the customer index)")
        replay_floors(app, Path(tmp))


def replay_floors(app: LedgerApplication, tmp: Path) -> None:
    recorder = app.ledger_recorder
    head = recorder.max_notification_id() or 0
    click.echo("replay")
    read_s, read = timed("reading each customer's events, customer by customer",
                         lambda: list(recorder.iter_customer_events(head)))
    decode_s, grouped = timed("decoding them", lambda: list(by_customer_stream(read)))
    fold_s, versions = timed("folding every version",
                             lambda: [(c, fold_versions(facts)) for c, facts in grouped])
    shape_s, shaped = timed("the view's rows",
                            lambda: [customer_rows(c, v) for c, v in versions])
    columns_s, _ = timed("query columns", lambda: query_columns(shaped))
    write_s, _ = timed("SQLite writes of the rows (a new view)", lambda: write_view(
        shaped, tmp / "view.db", head))
    total = read_s + decode_s + fold_s + shape_s + columns_s + write_s
    click.echo(f"both cores, shared perfectly, no process start, no hand-over: at most "
               f"{head / (total / 2):,.0f} events/s")


def query_columns(shaped: list[CustomerRows]) -> bytes | None:
    columns = Columns()
    for _ in gathering(shaped, columns):
        pass
    return MRRColumns.gathered(columns).to_bytes()


def write_view(shaped: list[CustomerRows], path: Path, head: int) -> None:
    """The rows written by the view's own rebuild, into a new file."""
    app = LedgerApplication(fresh(path))
    view = MRRProjection(app).view
    view.rebuild(iter(shaped), Tracking(app.name, head), lambda: None)
    app.close()


if __name__ == "__main__":
    main()
