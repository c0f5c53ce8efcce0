"""Benchmarks: ingest, full rebuild, NRR latency (in-process and CLI), peak memory, and DuckDB
computing the same NRR from the raw feed, side by side; before each size, a yardstick of the
machine's speed at that moment (bench/reference.py).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/run.py --customers 20000 --customers 100000 [--pg URL]
    .venv/bin/python bench/run.py --fx --customers 20000    # single vs multi-currency

Prints one table per size. Each step runs `revledger` in a subprocess, so peak RSS is that
command's own. Feeds are generated once into bench/data/ (deterministic).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import click
import orjson

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
START, END = date(2024, 6, 30), date(2025, 6, 30)
NRR_ARGS = ["--start", START.isoformat(), "--end", END.isoformat()]
# revledger runs as installed: with Python's bytecode cache, even where the environment
# turns it off (as this machine's does), else every call compiles the project afresh.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def feed_for(customers: int, currencies: bool = False) -> Path:
    path = DATA / f"feed-{customers}{'-fx' if currencies else ''}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"),
                            "--customers", str(customers),
                            *(["--currencies"] if currencies else [])], stdout=out, check=True)
    return path


def revledger(db: str, *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS of that process in MiB, last stderr line) of one CLI run."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "cli", "--db", db, *args], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=err, env=CLI_ENV)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode().strip()
    if process.returncode != 0:
        raise SystemExit(f"revledger {' '.join(args)} failed ({process.returncode}):\n{text}")
    return seconds, usage.ru_maxrss // 1024, text.splitlines()[-1] if text else ""


def in_process_nrr(db: str) -> tuple[float, list[float], dict]:
    """Engine load time, then latencies of NRR queries for several periods and filters."""
    sys.path.insert(0, str(ROOT))
    from projections.periods import end_of, parse_period
    from services.ledger import open_ledger
    from services.projections import current_index

    with open_ledger(db) as app:
        started = time.perf_counter()
        index, _ = current_index(app)
        load = time.perf_counter() - started
    queries = [
        (end_of(START), end_of(END), None, None),
        (end_of(date(2023, 12, 31)), end_of(date(2024, 12, 31)), None, None),
        (end_of(START), end_of(END), parse_period("2023"), None),
        (end_of(START), end_of(END), None, {"region": "EU"}),
        (end_of(date(2025, 3, 31)), end_of(date(2025, 9, 30)), parse_period("2024-Q2"),
         {"tier": "mid"}),
    ]
    latencies = []
    for start, end, cohort, segment in queries * 3:
        began = time.perf_counter()
        index.nrr(start, end, cohort, segment)
        latencies.append(time.perf_counter() - began)
    return load, latencies, index.nrr(end_of(START), end_of(END))


DUCKDB_NRR = """
WITH raw AS (
  SELECT *, row_number() OVER () AS seq FROM read_json_auto(?, format='newline_delimited',
    columns={event_id:'VARCHAR', type:'VARCHAR', effective_at:'VARCHAR', customer_id:'VARCHAR',
             subscription_id:'VARCHAR', amount:'VARCHAR', interval:'VARCHAR',
             interval_count:'BIGINT', quantity:'BIGINT', voids:'VARCHAR'})
), firsts AS (
  SELECT * FROM raw QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1
), live AS (
  SELECT * FROM firsts WHERE type LIKE 'subscription.%'
    AND event_id NOT IN (SELECT voids FROM firsts WHERE type = 'event.voided')
), typed AS (
  SELECT subscription_id, customer_id, seq, CAST(effective_at AS TIMESTAMPTZ) AS eff,
    CASE WHEN type IN ('subscription.started', 'subscription.reactivated') THEN TRUE
         WHEN type = 'subscription.cancelled' THEN FALSE END AS active,
    CAST(amount AS DECIMAL(18, 2)) AS amount, interval,
    CASE WHEN type IN ('subscription.started', 'subscription.reactivated')
         THEN coalesce(interval_count, 1) ELSE interval_count END AS interval_count,
    CASE WHEN type IN ('subscription.started', 'subscription.reactivated')
         THEN coalesce(quantity, 1) ELSE quantity END AS quantity
  FROM live
), states AS (
  SELECT subscription_id, customer_id, eff, seq,
    coalesce(last_value(active IGNORE NULLS) OVER w, FALSE) AS active,
    coalesce(last_value(amount IGNORE NULLS) OVER w, 0) AS amount,
    coalesce(last_value(interval IGNORE NULLS) OVER w, 'month') AS interval,
    coalesce(last_value(interval_count IGNORE NULLS) OVER w, 1) AS interval_count,
    coalesce(last_value(quantity IGNORE NULLS) OVER w, 1) AS quantity
  FROM typed
  WINDOW w AS (PARTITION BY subscription_id ORDER BY eff, seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), mrr AS (
  SELECT *, CASE WHEN active THEN amount * quantity *
    CASE interval WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 ELSE 365 END
    ELSE 0 END AS mrr12x, interval_count FROM states
), at_bound AS (
  SELECT customer_id,
    sum(CASE WHEN b = 0 THEN mrr12x / interval_count END) AS m0,
    sum(CASE WHEN b = 1 THEN mrr12x / interval_count END) AS m1
  FROM (SELECT 0 AS b, ?::TIMESTAMPTZ AS bound UNION ALL SELECT 1, ?::TIMESTAMPTZ) bounds
  JOIN LATERAL (SELECT * FROM mrr WHERE eff < bounds.bound
                QUALIFY row_number() OVER (PARTITION BY subscription_id ORDER BY eff DESC,
                                           seq DESC) = 1) s ON TRUE
  GROUP BY customer_id
)
SELECT sum(m0) / 12, sum(coalesce(m1, 0)) / 12 FROM at_bound WHERE m0 > 0
"""


def duckdb_nrr(feed: Path) -> tuple[float, str]:
    import duckdb

    started = time.perf_counter()
    bounds = [f"{day + timedelta(days=1)}T00:00:00Z" for day in (START, END)]
    starting, ending = duckdb.connect().execute(DUCKDB_NRR, [str(feed), *bounds]).fetchone()
    seconds = time.perf_counter() - started
    return seconds, f"{ending / starting:.6f}"


def bench(customers: int, pg: str | None) -> None:
    feed = feed_for(customers)
    events = sum(1 for _ in feed.open("rb"))
    db_file = DATA / f"bench-{customers}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    db = f"sqlite:///{db_file}"
    print(f"\n== {customers:,} customers, {events:,} feed lines ({feed.stat().st_size >> 20} MiB)")
    print(f"yardstick           {_reference():10,.0f} events/s  "
          "(eventsourcing alone, just before: bench/reference.py)")
    seconds, rss, summary = revledger(db, "ingest", str(feed))
    print(f"ingest  SQLite      {events / seconds:10,.0f} lines/s  {seconds:7.2f} s  "
          f"peak {rss} MiB   [{summary}]")
    seconds, rss, summary = revledger(db, "replay")
    print(f"replay  SQLite      {events / seconds:10,.0f} events/s {seconds:7.2f} s  "
          f"peak {rss} MiB   [{summary}]")
    if pg:  # after SQLite's figures: the server goes on working (vacuum, checkpoints)
        _reset_pg(pg)
        seconds, rss, summary = revledger(pg, "ingest", str(feed))
        print(f"ingest  PostgreSQL  {events / seconds:10,.0f} lines/s  {seconds:7.2f} s  "
              f"peak {rss} MiB   [{summary}]")
        seconds, rss, summary = revledger(pg, "replay")
        print(f"replay  PostgreSQL  {events / seconds:10,.0f} events/s {seconds:7.2f} s  "
              f"peak {rss} MiB   [{summary}]")
    load, latencies, _ = in_process_nrr(db)
    print(f"nrr in-process: engine load {load * 1000:.0f} ms; query median "
          f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
          f"(5 queries x3: periods, cohort, segment)")
    cli_times = []
    for _ in range(3):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "cli", "--db", db, "nrr", *NRR_ARGS,
                              "--format", "json"], cwd=ROOT, capture_output=True, check=True,
                             env=CLI_ENV)
        cli_times.append(time.perf_counter() - started)
    ours = orjson.loads(out.stdout)["nrr"]
    print(f"nrr CLI (process start included): median {statistics.median(cli_times):.2f} s "
          f"-> NRR {ours}")
    for share in (10, 50):  # known at the instant when that share of events was still to come
        known_at, position = _recorded_with(db_file, share)
        seconds, rss, _ = revledger(db, "nrr", *NRR_ARGS, "--known-at", known_at,
                                    "--format", "json")
        print(f"nrr --known-at, {share}% of events recorded since (position {position:,}): "
              f"{seconds:.2f} s, peak {rss} MiB")
    seconds, rss, _ = revledger(db, "verify")
    print(f"verify SQLite (chain + fresh fold): {seconds:.2f} s, peak {rss} MiB")
    try:
        duck_seconds, duck = duckdb_nrr(feed)
    except ImportError:
        print("duckdb: not installed (pip install -e '.[bench]')")
        return
    agree = "same" if duck == ours else "DIFFERENT"
    print(f"duckdb from raw JSONL: {duck_seconds:.2f} s -> NRR {duck} ({agree})")


MOVEMENT_ARGS = ["--start", "2024-07", "--end", "2025-06"]


def bench_fx(customers: int) -> None:
    """The same business in one currency, then with 30% of its customers in ten others
    and a year of daily rates (`generate.py --currencies`), one after the other in this
    run: ingest, rebuild, `nrr` and `movements` (CLI, and the engine in-process), and the
    multi-currency figures as a multiple of the single-currency ones."""
    print(f"\n== FX: {customers:,} customers, single vs multi-currency, same run")
    print(f"yardstick           {_reference():10,.0f} events/s  (bench/reference.py)")
    figures: dict[str, dict[str, float]] = {}
    for label, currencies in (("single", False), ("multi", True)):
        feed = feed_for(customers, currencies)
        db_file = DATA / f"bench-{customers}-{label}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        db = f"sqlite:///{db_file}"
        ingest, _, summary = revledger(db, "ingest", str(feed))
        replay = min(revledger(db, "replay")[0] for _ in range(2))
        nrr = statistics.median(revledger(db, "nrr", *NRR_ARGS)[0] for _ in range(3))
        moves = statistics.median(revledger(db, "movements", *MOVEMENT_ARGS)[0]
                                  for _ in range(3))
        load, nrr_in, moves_in = _in_process_fx(db)
        figures[label] = {"ingest": ingest, "rebuild": replay, "nrr CLI": nrr,
                          "movements CLI": moves, "engine load": load, "nrr in-process": nrr_in,
                          "movements in-process": moves_in}
        print(f"{label:6} ingest {ingest:6.2f} s [{summary}]")
    print(f"{'':22}{'single':>10}{'multi':>10}{'multi/single':>14}")
    for step, single in figures["single"].items():
        multi = figures["multi"][step]
        print(f"{step:22}{single:10.3f}{multi:10.3f}{multi / single:13.2f}x")


def _in_process_fx(db: str) -> tuple[float, float, float]:
    """Engine load (the query columns and the rates), then the median of 5 NRR and of 5
    year-of-movements queries, in seconds."""
    sys.path.insert(0, str(ROOT))
    from projections.periods import end_of, parse_month
    from services.ledger import open_ledger
    from services.projections import current_index

    with open_ledger(db) as app:
        started = time.perf_counter()
        index, _ = current_index(app)  # the columns and the rates, from their caches
        load = time.perf_counter() - started
    nrr, moves = [], []
    for _ in range(5):
        began = time.perf_counter()
        index.nrr(end_of(START), end_of(END))
        nrr.append(time.perf_counter() - began)
        began = time.perf_counter()
        index.movements(parse_month("2024-07"), parse_month("2025-06"))
        moves.append(time.perf_counter() - began)
    return load, statistics.median(nrr), statistics.median(moves)


def _reference() -> float:
    """The machine's speed at the moment (see bench/reference.py), in a process of its own
    as each ingest is."""
    out = subprocess.run([sys.executable, "-c", "from reference import append_rate; "
                          "print(append_rate())"], cwd=ROOT / "bench", capture_output=True,
                         check=True, env=CLI_ENV)
    return float(out.stdout)


def _recorded_with(db_file: Path, share: int) -> tuple[str, int]:
    """(recorded_at, position) of the event after which `share` % of the ledger came."""
    import sqlite3

    with sqlite3.connect(db_file) as conn:
        (head,) = conn.execute("SELECT MAX(position) FROM event_chain").fetchone()
        return conn.execute("SELECT recorded_at, position FROM event_chain WHERE position = ?",
                            [head - head * share // 100]).fetchone()


def _reset_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


@click.command()
@click.option("--customers", "sizes", multiple=True, type=int, default=[20_000, 100_000],
              show_default=True)
@click.option("--pg", help="Also benchmark this PostgreSQL database (it is emptied).")
@click.option("--fx", is_flag=True, help="Single- against multi-currency instead (SQLite).")
def main(sizes: list[int], pg: str | None, fx: bool) -> None:
    os.environ.pop("REVLEDGER_DB", None)
    for customers in sizes:
        if fx:
            bench_fx(customers)
        else:
            bench(customers, pg)


if __name__ == "__main__":
    main()
