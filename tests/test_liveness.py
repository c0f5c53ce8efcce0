"""The watch over PostgreSQL connections (ledger/liveness.py), without a server: fake
connections over a socket pair, a probe that says whether the server answers, a clock
moved by hand. A connection waiting for an answer is shut only when the server does not
accept a new connection; a long statement on a working server is never cut."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg import pq

from ledger.liveness import Limits, Watch

SERVER = {"host": "10.0.0.1", "port": 5432, "user": "u", "password": "p", "dbname": "d"}


@dataclass
class PgConn:
    socket: int
    transaction_status: pq.TransactionStatus = pq.TransactionStatus.IDLE


@dataclass(eq=False)  # watched by identity, as connections are
class FakeConnection:
    """What the watch reads of a psycopg connection; `server` is the other end."""

    pgconn: PgConn
    server: socket.socket
    client: socket.socket
    closed: bool = False

    @classmethod
    def open(cls) -> FakeConnection:
        client, server = socket.socketpair()
        return cls(PgConn(client.fileno()), server, client)

    def waiting(self) -> FakeConnection:
        self.pgconn.transaction_status = pq.TransactionStatus.ACTIVE
        return self

    def was_shut(self) -> bool:
        self.server.settimeout(0)
        try:
            return self.server.recv(1) == b""  # end of stream: shut by the watch
        except BlockingIOError:
            return False


@dataclass
class Setting:
    now: float = 0.0
    server_answers: bool = True
    probes: list[dict[str, Any]] = field(default_factory=list)

    def probe(self, params: dict[str, Any], timeout: int) -> bool:
        assert timeout == 3
        self.probes.append(params)
        return self.server_answers


@pytest.fixture
def setting() -> Setting:
    return Setting()


@pytest.fixture
def watch(setting) -> Watch:
    return Watch(Limits(connect_timeout=5, probe_after=3.0, probe_timeout=3),
                 setting.probe, lambda: setting.now)


def watched(watch: Watch, setting: Setting) -> FakeConnection:
    conn = FakeConnection.open()
    watch.add(conn, SERVER, start=False)
    return conn


def test_a_short_wait_asks_nothing(watch, setting):
    conn = watched(watch, setting).waiting()
    for setting.now in (0.0, 1.0, 2.9):
        watch.check()
    assert setting.probes == [] and not conn.was_shut()


def test_a_long_statement_on_a_working_server_goes_on_asked_once_per_period(watch, setting):
    conn = watched(watch, setting).waiting()
    for setting.now in (0.0, 3.0, 4.0, 5.9):
        watch.check()
    assert setting.probes == [SERVER]
    for setting.now in (6.0, 100.0):
        watch.check()
    assert len(setting.probes) == 3 and not conn.was_shut()
    assert watch.unanswered() is None


def test_a_server_that_does_not_answer_has_its_waiting_connections_shut(watch, setting):
    waiting, idle = watched(watch, setting).waiting(), watched(watch, setting)
    setting.server_answers = False
    for setting.now in (0.0, 3.5):
        watch.check()
    assert waiting.was_shut() and not idle.was_shut()
    assert watch.unanswered() == pytest.approx(6.5)  # waited 3.5 s, the probe's 3 s
    setting.now = 70.0
    assert watch.unanswered() is None  # a minute later, an error is the error's own


def test_after_giving_up_old_sessions_are_shut_at_once_new_ones_asked_afresh(watch, setting):
    setting.server_answers = False
    first, earlier = watched(watch, setting).waiting(), watched(watch, setting)
    for setting.now in (0.0, 3.0):
        watch.check()
    assert first.was_shut() and not earlier.was_shut()
    setting.server_answers = True  # the server is back
    setting.now = 3.5
    earlier.waiting()
    watch.check()
    assert earlier.was_shut()  # its session dates from the freeze: it will never answer
    setting.now = 4.0
    newer = watched(watch, setting).waiting()
    for setting.now in (4.0, 7.0):
        watch.check()
    assert not newer.was_shut()  # asked, and the server answered
