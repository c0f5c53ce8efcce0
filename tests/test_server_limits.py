"""The server against hostile clients, over real HTTP on loopback, on both stores: slow
clients are cut at their deadlines, connections are capped, a hostile request costs only
itself among concurrent ones, and an unauthenticated caller learns nothing of the
database. Every wait polls a socket or the server with a deadline; none sleeps a guess."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from api.app import create_app
from api.server import Limits, server
from ledger.sources.stripe_source import sign
from services.events import list_events
from tests.feeds import started
from tests.stripe_fixtures import T0
from tests.test_hostile import DEPTH_REASON, deep, event, largest_stripe_event, subscription

TOKEN = "t"
SECRET = "whsec_test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLACK = 5.0  # seconds a loaded machine may add to a deadline before the test calls it late


@contextmanager
def serving(url: str, limits: Limits | None = None) -> Iterator[tuple[str, int]]:
    """The app behind api.server's limits (the defaults unless given) on a free loopback
    port: (host, port)."""
    running = server(create_app(url, TOKEN, {"stripe": SECRET}), "127.0.0.1", 0,
                     limits or Limits(), log_level="critical")
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:  # readiness, not a guess: set once listening
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield "127.0.0.1", running.servers[0].sockets[0].getsockname()[1]
    finally:
        running.should_exit = True
        thread.join(timeout=30)


def base(address: tuple[str, int]) -> str:
    return f"http://{address[0]}:{address[1]}"


def slow_clients(address: tuple[str, int], count: int, start: bytes) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(address, timeout=10)
        client.sendall(start)
        clients.append(client)
    return clients


def closed_by(clients: list[socket.socket], deadline: float, dribble: bytes = b"") -> dict:
    """When each client's connection was closed by the server, and what it was told,
    polling until `deadline` (monotonic). Each poll first sends `dribble` on the open ones,
    as slowloris does to look alive."""
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    received = {c: b"" for c in clients}
    while len(closed) < len(clients) and time.monotonic() < deadline:
        open_ = [c for c in clients if c not in closed]
        for client in open_:
            with suppress(OSError):  # closed: the read below sees it
                client.send(dribble)
        readable, _, _ = select.select(open_, [], [], 0.2)
        for client in readable:
            try:
                chunk = client.recv(4096)
            except ConnectionResetError:
                chunk = b""
            received[client] += chunk
            if not chunk:
                closed[client] = (time.monotonic(), received[client])
    for client in clients:
        client.close()
    return closed


# -- slow and greedy clients ----------------------------------------------------------------

def test_slowloris_connections_are_closed_at_the_header_deadline(sqlite_url):
    limits = Limits(header_timeout=1.0, body_timeout=1.0)
    with serving(sqlite_url, limits) as address:
        opened = time.monotonic()
        clients = slow_clients(address, 100, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        closed = closed_by(clients, opened + limits.header_timeout + SLACK, dribble=b"X-a: b\r\n")
        assert len(closed) == 100, f"{100 - len(closed)} of 100 still open"
        assert all(at - opened >= limits.header_timeout for at, _ in closed.values())
        assert all(said.startswith(b"HTTP/1.1 408 ") for _, said in closed.values())
        answer = httpx.post(base(address) + "/v1/events", headers=AUTH, content=orjson.dumps(
            started("e1", "s1", "c1", "2024-01-01T00:00:00Z")))
        assert answer.status_code == 200  # the server is still there for the others


def test_a_body_sent_too_slowly_is_cut_at_the_body_deadline(sqlite_url):
    limits = Limits(header_timeout=1.0, body_timeout=1.0)
    with serving(sqlite_url, limits) as address:
        opened = time.monotonic()
        clients = slow_clients(address, 20, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                               b"Authorization: Bearer t\r\nContent-Length: 1000\r\n\r\n{")
        closed = closed_by(clients, opened + 2 * limits.header_timeout + SLACK, dribble=b" ")
        assert len(closed) == 20, f"{20 - len(closed)} of 20 still open"
    assert list_events(sqlite_url) == []


def test_a_client_answered_413_cannot_keep_the_connection_by_dribbling_its_body(sqlite_url):
    limits = Limits(header_timeout=1.0, body_timeout=1.0)
    with serving(sqlite_url, limits) as address:
        [client] = slow_clients(address, 1, b"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 99999999\r\n\r\n" + b" " * (5 << 20))
        answered = time.monotonic()  # the connection is not reused after an early answer
        [(_, said)] = closed_by([client], answered + 2 * limits.body_timeout + SLACK,
                                dribble=b" ").values()
        assert said.startswith(b"HTTP/1.1 413 ")


def test_connections_over_the_cap_are_refused_at_once_and_the_cap_frees_up(sqlite_url):
    limits = Limits(header_timeout=1.0, max_connections=10)
    with serving(sqlite_url, limits) as address:
        opened = time.monotonic()
        holders = slow_clients(address, 10, b"GET /v1/health HTTP/1.1\r\n")
        extra = slow_clients(address, 5, b"")
        refused = closed_by(extra, time.monotonic() + SLACK)
        assert len(refused) == 5
        assert all(said.startswith(b"HTTP/1.1 503 ") for _, said in refused.values())
        assert all(at - opened < limits.header_timeout for at, _ in refused.values())
        assert len(closed_by(holders, opened + limits.header_timeout + SLACK)) == 10
        assert httpx.get(base(address) + "/v1/health").status_code == 200


# -- a hostile request costs only itself ----------------------------------------------------

def test_deeply_nested_requests_among_concurrent_ones_fail_alone(db_url):
    def post(n: int) -> httpx.Response:
        body = deep(f"d{n}") if n % 20 == 0 else orjson.dumps(
            started(f"e{n}", f"s{n}", f"c{n}", "2024-01-01T00:00:00Z"))
        return client.post("/v1/events", content=body)

    with serving(db_url) as address, httpx.Client(
        base_url=base(address), headers=AUTH, timeout=60,
        limits=httpx.Limits(max_connections=40),
    ) as client, ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(post, range(200)))
    for n, answer in enumerate(answers):
        if n % 20 == 0:
            assert answer.status_code == 400
            assert answer.json()["error"] == f"line 1: d{n}: {DEPTH_REASON}"
        else:
            assert answer.status_code == 200, answer.text
    assert len(list_events(db_url)) == 190


def webhook(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/v1/webhooks/stripe", content=body,
                       headers={"Stripe-Signature": sign(body, SECRET, int(time.time()))})


def test_deep_or_duplicated_json_is_a_400_naming_it_on_both_endpoints(db_url):
    stripe_body = orjson.dumps(event("evt_1", "customer.subscription.created", subscription(),
                                     T0))
    with serving(db_url) as address, httpx.Client(base_url=base(address), timeout=60) as client:
        twice = client.post("/v1/events", headers=AUTH, content=b'{"event_id": "d", "type": '
                            b'"customer.created", "type": "customer.updated"}')
        assert twice.status_code == 400
        assert twice.json()["error"] == "line 1: d: duplicate key 'type' in one object"
        hooked = webhook(client, stripe_body[:-1] + b',"created":1}')
        assert hooked.status_code == 400
        assert hooked.json() == {"error": "duplicate key 'created' in one object"}
        nested = webhook(client, stripe_body[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}")
        assert nested.status_code == 400
        assert nested.json() == {"error": DEPTH_REASON.replace("64", "63")}
        assert webhook(client, stripe_body).status_code == 200
    assert [e["event_id"] for e in list_events(db_url)] == ["stripe:evt_1"]


def test_a_token_holder_cannot_take_a_stripe_id_before_the_webhook(db_url):
    squatter = {**started("stripe:evt_1", "s1", "c1", "2024-01-01T00:00:00Z")}
    real = orjson.dumps(event("evt_1", "customer.subscription.created", subscription(), T0))
    with serving(db_url) as address, httpx.Client(base_url=base(address), timeout=60) as client:
        taken = client.post("/v1/events", headers=AUTH, content=orjson.dumps(squatter))
        assert taken.status_code == 400
        assert "reserved for events delivered by that billing source" in taken.json()["error"]
        assert webhook(client, real).status_code == 200  # never a 409
    assert [e["event_id"] for e in list_events(db_url)] == ["stripe:evt_1"]


def test_the_largest_stripe_event_is_recorded_and_one_over_the_limit_is_413(db_url):
    large = largest_stripe_event()
    huge = orjson.dumps(event("evt_huge", "customer.subscription.created",
                              {**subscription("sub_2"), "note": "x" * (4 << 20)}, T0))
    with serving(db_url) as address, httpx.Client(base_url=base(address), timeout=60) as client:
        answer = webhook(client, large)
        assert answer.status_code == 200, answer.text
        assert webhook(client, huge).status_code == 413
    [stored] = list_events(db_url)
    assert stored["payload"]["_delivery"]["raw_body"] == large.decode()


# -- health tells the unauthenticated nothing of the database -------------------------------

def unreachable(url: str) -> str:
    """The same kind of store, somewhere it cannot be opened."""
    if url.startswith("sqlite"):
        return "sqlite:////no-such-directory/secret-name.db"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/secret_name"))


def test_health_answers_only_unavailable_when_the_database_is(db_url):
    url = unreachable(db_url)
    with serving(url) as address:
        answer = httpx.get(base(address) + "/v1/health")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable"}
    parts = urlsplit(db_url)
    for secret in ("secret", "sqlite", "postgres", parts.hostname or "", parts.username or "",
                   str(parts.port or "")):
        if secret:
            assert secret not in answer.text


def test_health_answers_ok_when_the_database_is_up(db_url):
    with serving(db_url) as address:
        assert httpx.get(base(address) + "/v1/health").json()["status"] == "ok"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_server_log_says_why_on_one_escaped_line(tmp_path):
    url = f"sqlite:///{tmp_path}/no such\ndirectory\nWARNING: forged/ledger.db"
    log, logger = Lines(), logging.getLogger("revledger.http")
    logger.addHandler(log)
    try:
        with serving(url) as address:
            assert httpx.get(base(address) + "/v1/health").status_code == 503
    finally:
        logger.removeHandler(log)
    [line] = [line for line in log.lines if line.startswith("unavailable:")]
    assert "\n" not in line and "no such\\ndirectory\\nWARNING: forged" in line
