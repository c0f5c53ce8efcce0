"""The HTTP API over real HTTP on loopback, on both stores: authentication, canonical
events, signed Stripe webhooks and their MRR effect, idempotent and concurrent delivery."""

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
from ledger.sources.stripe import sign, verify
from services.events import list_events
from services.ingest import ingest_feed
from services.metrics import mrr_report
from tests.feeds import changed, jsonl, started
from tests.stripe_events import DAY, T0, coupon, event, price, subscription

TOKEN = "test-token"
SECRET = "whsec_test"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(db_url) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on a free loopback port, in this process."""
    config = uvicorn.Config(create_app(db_url, TOKEN, SECRET), host="127.0.0.1", port=0,
                            log_level="warning", lifespan="on")
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


def webhook(client: httpx.Client, stripe_event: dict, *, secret: str = SECRET,
            at: int | None = None) -> httpx.Response:
    body = orjson.dumps(stripe_event)
    signature = sign(body, secret, int(time.time()) if at is None else at)
    return client.post("/v1/webhooks/stripe", content=body,
                       headers={"Stripe-Signature": signature})


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


def test_json_lines_bodies_answer_per_event(server):
    answer = post_events(server, jsonl(E1, changed("e2", "s1", "c1", "2024-02-01T00:00:00Z",
                                                   quantity=2)))
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "accepted"]


def test_an_invalid_event_is_400_naming_event_and_field_and_stores_nothing_of_it(server):
    bad = {**E1, "event_id": "e9", "amount": 100}
    answer = post_events(server, jsonl(bad))
    assert answer.status_code == 400
    assert answer.json()["error"] == "line 1: e9: amount: Input should be a valid string"
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


# -- Stripe webhooks ------------------------------------------------------------------------

def test_a_signed_webhook_is_recorded_and_redelivery_is_a_duplicate(server):
    created = event("evt_1", "customer.subscription.created", subscription(), T0)
    assert webhook(server, created).json()["results"][0]["status"] == "accepted"
    redelivered = {**created, "pending_webhooks": 3}
    assert webhook(server, redelivered).json()["results"][0]["status"] == "duplicate"
    assert mrr(server, "2024-01-31") == "29.00"


@pytest.mark.parametrize("tamper", ["wrong secret", "stale", "body changed", "missing"])
def test_a_webhook_that_fails_verification_is_400_and_stores_nothing(server, tamper):
    created = event("evt_1", "customer.subscription.created", subscription(), T0)
    body = orjson.dumps(created)
    now = int(time.time())
    header = {
        "wrong secret": sign(body, "whsec_other", now),
        "stale": sign(body, SECRET, now - 301),
        "body changed": sign(body + b" ", SECRET, now),
        "missing": "",
    }[tamper]
    answer = server.post("/v1/webhooks/stripe", content=body,
                         headers={"Stripe-Signature": header} if header else {})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("signature: ")
    assert list_events(server.db_url) == []


def test_any_of_several_v1_signatures_may_match(server):
    created = event("evt_1", "customer.subscription.created", subscription(), T0)
    body = orjson.dumps(created)
    good = sign(body, SECRET, int(time.time()))
    header = good.replace(",v1=", ",v1=" + "0" * 64 + ",v1=")
    answer = server.post("/v1/webhooks/stripe", content=body,
                         headers={"Stripe-Signature": header})
    assert answer.status_code == 200


def lifecycle() -> list[dict]:
    """One subscription through every mapped type, with the MRR after each."""
    monthly = [(price(cents=2900), 1)]
    return [
        event("c", "customer.created", {"id": "cus_1", "created": T0, "metadata": {}}, T0),
        event("s1", "customer.subscription.created",
              subscription(status="trialing", prices=monthly), T0),
        event("s2", "customer.subscription.updated", subscription(prices=monthly),
              T0 + 14 * DAY, previous={"status": "trialing"}),
        event("s3", "customer.subscription.updated",
              subscription(prices=[(price(cents=2900), 4)]), T0 + 40 * DAY),
        event("s4", "customer.subscription.updated", subscription(
            prices=[(price("price_y", 120000, "year"), 1)]), T0 + 70 * DAY),
        event("s5", "customer.subscription.updated", subscription(
            prices=[(price("price_y", 120000, "year"), 1)],
            discount=coupon(percent_off=25)), T0 + 100 * DAY),
        event("s6", "customer.subscription.paused", subscription(status="paused"),
              T0 + 130 * DAY),
        event("s7", "customer.subscription.resumed", subscription(prices=monthly),
              T0 + 160 * DAY),
        event("s8", "customer.subscription.deleted",
              subscription(status="canceled", ended_at=T0 + 200 * DAY), T0 + 200 * DAY),
    ]


# (date, MRR at its end) after each step of `lifecycle`
EFFECTS = [("2024-01-10", "0.00"), ("2024-01-20", "29.00"), ("2024-02-15", "116.00"),
           ("2024-03-20", "100.00"), ("2024-04-20", "75.00"), ("2024-05-20", "0.00"),
           ("2024-06-20", "29.00"), ("2024-07-25", "0.00")]


def test_each_stripe_event_type_has_its_mrr_effect(server):
    for stripe_event in lifecycle():
        assert webhook(server, stripe_event).status_code == 200
    assert [(day, mrr(server, day)) for day, _ in EFFECTS] == EFFECTS


def test_out_of_order_delivery_gives_the_same_mrr(server):
    for stripe_event in reversed(lifecycle()):
        assert webhook(server, stripe_event).status_code == 200
    assert [(day, mrr(server, day)) for day, _ in EFFECTS] == EFFECTS


def test_unmapped_stripe_types_are_acknowledged_and_ignored(server):
    answer = webhook(server, event("evt_i", "invoice.paid", {"id": "in_1"}, T0))
    assert answer.json() == {"results": [], "ignored": True}


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


def test_the_raw_body_and_signature_are_kept_and_still_verify(server):
    created = event("evt_1", "customer.subscription.created", subscription(), T0)
    body = orjson.dumps(created, option=orjson.OPT_INDENT_2)  # any layout: kept as sent
    now = int(time.time())
    header = sign(body, SECRET, now)
    server.post("/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": header})
    kept = list_events(server.db_url)[0]["payload"]["_delivery"]
    assert kept == {"raw_body": body.decode(), "stripe_signature": header}
    verify(kept["stripe_signature"], kept["raw_body"].encode(), SECRET, now=now)  # no raise
