"""The HTTP API over real HTTP on loopback, on both stores: authentication, canonical
events, idempotent and concurrent delivery (Stripe webhooks: tests/test_stripe_delivery.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from click.testing import CliRunner

from api.app import create_app
from cli import main
from services.errors import LedgerError
from services.events import list_events
from services.ingest import ingest_feed
from services.metrics import mrr_report
from tests.feeds import changed, jsonl, started

TOKEN = "test-token"
SECRET = "whsec_test"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(db_url) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on a free loopback port, in this process."""
    config = uvicorn.Config(create_app(db_url, TOKEN, {"stripe": SECRET}), host="127.0.0.1",
                            port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # readiness, not a guess: started is set once listening
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        client.db_url = db_url  # type: ignore[attr-defined]
        yield client
    server.should_exit = True
    thread.join(timeout=30)


AUTH = {"Authorization": f"Bearer {TOKEN}"}
E1 = started("e1", "s1", "c1", "2024-01-01T00:00:00Z")


def post_events(client: httpx.Client, body: bytes, headers: dict = AUTH) -> httpx.Response:
    return client.post("/v1/events", content=body, headers=headers)


def mrr(client: httpx.Client, day: str) -> str:
    return mrr_report(client.db_url, date.fromisoformat(day))["mrr"]  # type: ignore[attr-defined]


# -- canonical events -----------------------------------------------------------------------

def test_health_names_the_store_and_head(server):
    answer = server.get("/v1/health").json()
    assert answer["status"] == "ok"
    assert answer["store"] in ("sqlite", "postgresql")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_events_need_the_bearer_token(server, headers):
    answer = post_events(server, jsonl(E1), headers)
    assert answer.status_code == 401
    assert list_events(server.db_url) == []


def test_an_event_is_accepted_once_and_then_a_duplicate(server):
    first = post_events(server, orjson.dumps(E1, option=orjson.OPT_INDENT_2))
    assert first.status_code == 200
    assert first.json()["results"] == [{"line": 1, "event_id": "e1", "status": "accepted"}]
    again = post_events(server, jsonl(E1))
    assert (again.status_code, again.json()["results"][0]["status"]) == (200, "duplicate")
    assert mrr(server, "2024-01-31") == "100.00"  # the projection was caught up before 200


def test_exchange_rates_and_other_currencies_are_posted_like_any_event(server):
    """contract v2: a EUR subscription and the rate that converts it, then a void of it."""
    eur = {**E1, "currency": "EUR"}
    rate = {"event_id": "r1", "type": "fx.rate", "effective_at": "2024-01-01T00:00:00Z",
            "base": "EUR", "quote": "USD", "rate": "1.10"}
    answer = post_events(server, jsonl(eur, rate))
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "accepted"]
    assert mrr(server, "2024-01-31") == "110.00"
    assert post_events(server, jsonl(rate)).json()["results"][0]["status"] == "duplicate"
    post_events(server, jsonl({"event_id": "v1", "type": "event.voided", "voids": "r1"}))
    with pytest.raises(LedgerError, match="no exchange rate EUR->USD"):
        mrr(server, "2024-01-31")


def test_json_lines_bodies_answer_per_event(server):
    answer = post_events(server, jsonl(E1, changed("e2", "s1", "c1", "2024-02-01T00:00:00Z",
                                                   quantity=2)))
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "accepted"]


def test_an_invalid_event_is_400_naming_event_and_field_and_stores_nothing_of_it(server):
    bad = {**E1, "event_id": "e9", "amount": 100}
    answer = post_events(server, jsonl(bad))
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        'line 1: e9: amount: 100 is a JSON number; write it as a decimal string: "100.00"')
    assert list_events(server.db_url) == []


def test_a_conflict_is_409(server):
    post_events(server, jsonl(E1))
    answer = post_events(server, jsonl({**E1, "amount": "120.00"}))
    assert answer.status_code == 409
    assert answer.json()["results"][0]["status"] == "conflict"
    assert mrr(server, "2024-01-31") == "100.00"


def test_twenty_concurrent_posts_of_one_event_store_it_once(server):
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: post_events(server, jsonl(E1)), range(20)))
    assert {a.status_code for a in answers} == {200}
    statuses = sorted(a.json()["results"][0]["status"] for a in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    assert [e["event_id"] for e in list_events(server.db_url)] == ["e1"]


def test_the_server_builds_on_what_another_process_recorded_between_its_requests(server):
    """The server keeps its ledger open (and what it knows of each subscription's stream)
    across requests; a command-line ingest meanwhile moves a stream on behind its back."""
    post_events(server, jsonl(E1))
    ingest_feed(server.db_url, jsonl(changed("e2", "s1", "c1", "2024-02-01T00:00:00Z",
                                             quantity=2)).splitlines())
    answer = post_events(server, jsonl(changed("e3", "s1", "c1", "2024-03-01T00:00:00Z",
                                               quantity=3), E1))
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "duplicate"]
    assert [e["event_id"] for e in list_events(server.db_url)] == ["e1", "e2", "e3"]
    assert (mrr(server, "2024-02-29"), mrr(server, "2024-03-31")) == ("200.00", "300.00")
    assert CliRunner().invoke(main, ["--db", server.db_url, "verify"]).exit_code == 0


# -- the command line -----------------------------------------------------------------------

def test_serve_refuses_to_start_without_a_token(sqlite_url):
    env = {k: v for k, v in os.environ.items() if k != "REVLEDGER_API_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "cli", "--db", sqlite_url, "serve"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "REVLEDGER_API_TOKEN" in result.stderr


def test_revledger_serve_answers_on_its_port(sqlite_url):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "REVLEDGER_API_TOKEN": TOKEN, "REVLEDGER_STRIPE_WEBHOOK_SECRET": SECRET}
    process = subprocess.Popen([sys.executable, "-m", "cli", "--db", sqlite_url, "serve",
                                "--port", str(port)], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "revledger serve did not come up"
                time.sleep(0.05)
        assert health.json()["store"] == "sqlite"
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/events", content=jsonl(E1),
                            headers=AUTH, timeout=30)
        assert answer.json()["results"][0]["status"] == "accepted"
    finally:
        process.terminate()
        process.wait(timeout=30)
