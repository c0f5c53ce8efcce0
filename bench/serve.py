"""Sustained requests/s of `POST /v1/events`: single events, N concurrent clients, loopback.

    .venv/bin/python bench/serve.py [--clients 8] [--requests 4000] [--pg URL]

Starts `revledger serve` in its own process on a fresh SQLite file (and on PostgreSQL if
given: that database is emptied) and posts distinct canonical events, one per request.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


def body(n: int) -> bytes:
    return orjson.dumps({
        "event_id": f"b{n}", "type": "subscription.started",
        "effective_at": "2024-01-01T00:00:00Z", "customer_id": f"c{n % 5000}",
        "subscription_id": f"s{n}", "plan": "pro", "amount": "49.00", "currency": "USD",
        "interval": "month",
    })


def run(db: str, clients: int, requests: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "REVLEDGER_API_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "cli", "--db", db, "serve", "--port",
                               str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(base + "/v1/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        local = [httpx.Client(base_url=base, headers=headers, timeout=60)
                 for _ in range(clients)]

        def client(k: int) -> int:
            ok = 0
            for n in range(k, requests, clients):
                ok += local[k].post("/v1/events", content=body(n)).status_code == 200
            return ok

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            ok = sum(pool.map(client, range(clients)))
        seconds = time.perf_counter() - started
        print(f"{db.split(':')[0]:10} {clients} clients: {requests} requests in {seconds:.2f} s "
              f"= {requests / seconds:,.0f} requests/s ({ok} answered 200)")
    finally:
        server.terminate()
        server.wait()


@click.command()
@click.option("--clients", default=8, show_default=True)
@click.option("--requests", default=4000, show_default=True)
@click.option("--pg", help="Also on this PostgreSQL database (it is emptied).")
def main(clients: int, requests: int, pg: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/serve.db", clients, requests)
    if pg:
        import psycopg

        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        run(pg, clients, requests)


if __name__ == "__main__":
    main()
