"""Noticing a PostgreSQL server that stopped answering, within seconds.

A server that is down refuses connections at once, and one that is unreachable is
bounded by the connect timeout. A server that is frozen (a stopped process, a VM paused,
a network that drops packets without a word) is another matter: its kernel may still
acknowledge every packet, so neither TCP keepalives nor `tcp_user_timeout` ever fire, and
a client waiting for an answer waits forever. A statement timeout cannot tell a frozen
server from a long legitimate statement (a rebuild sorts the whole ledger) and a frozen
server would not enforce it anyway.

So the question is asked of the server, not of the clock: a connection of this process
that has waited for an answer for `probe_after` seconds makes the watch open a new
connection to the same server (a frozen server cannot complete the handshake). If that
fails within `probe_timeout`, every connection of this process waiting on that server is
shut down (its socket, so the waiting call returns with an error at once); if it
succeeds, the server is working and the statement goes on, however long it takes.
Worst case from the freeze to the error: `probe_after` + the watch's tick + `probe_timeout`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq

TICK = 0.5  # how often the watch looks at its connections (its own pace: not a race)


@dataclass(frozen=True)
class Limits:
    """The bounds on waiting for a PostgreSQL server, in seconds (docs/operations.md)."""

    connect_timeout: int = 5  # a server that does not complete a connection
    probe_after: float = 3.0  # a wait for an answer that makes the watch ask the server
    probe_timeout: int = 3  # how long the server has to accept that question

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, or REVLEDGER_PG_CONNECT_TIMEOUT / REVLEDGER_PG_PROBE_AFTER."""
        return cls(int(os.environ.get("REVLEDGER_PG_CONNECT_TIMEOUT") or cls.connect_timeout),
                   float(os.environ.get("REVLEDGER_PG_PROBE_AFTER") or cls.probe_after))


def connection_options(limits: Limits) -> dict[str, Any]:
    """libpq options for every connection: the connect timeout, and TCP keepalives and a
    user timeout so that a server whose host or network vanished is noticed by the kernel
    (~10 s); the server is asked to probe this client likewise, so that a client that
    vanished releases its locks."""
    return {
        "connect_timeout": limits.connect_timeout,
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
        "keepalives_count": 2, "tcp_user_timeout": 10_000,
        "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 "
                   "-c tcp_keepalives_count=2",
    }


class WatchedConnection(psycopg.Connection):
    """A psycopg connection the watch looks after (what the ledger's pool and its plain
    connections are made of)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        conn = super().connect(conninfo, **kwargs)
        WATCH.add(conn, {k: v for k, v in kwargs.items()
                         if k in ("host", "port", "user", "password", "dbname")})
        return conn


class Watch:
    """A watch over PostgreSQL connections (one thread, started with the first
    connection). `probe(params)` says whether a server accepts a new connection now;
    `clock` is monotonic seconds (both given by tests)."""

    def __init__(self, limits: Limits | None = None,
                 probe: Callable[[dict[str, Any], int], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits.from_env()
        self._probe = probe or answers
        self._clock = clock
        self._params: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
            weakref.WeakKeyDictionary())
        self._since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._born: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.gave_up: tuple[float, float] | None = None  # (when, after how long waiting)
        # Servers given up on in the last minute: a wait on them is not asked about again.
        self._given_up: dict[tuple, float] = {}

    def add(self, conn: Any, params: dict[str, Any], start: bool = True) -> None:
        """Watch `conn` (to the server `params` name); `start`: run the thread (a test
        calls `check` itself)."""
        with self._lock:
            self._params[conn] = params
            self._born[conn] = self._clock()
            if start and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="revledger-pg-watch",
                                                daemon=True)
                self._thread.start()

    def unanswered(self) -> float | None:
        """How long a connection of this process had waited when the watch gave up on
        its server, if it did in the last minute (what an error message should say)."""
        if self.gave_up is None or self._clock() - self.gave_up[0] > 60:
            return None
        return self.gave_up[1]

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            try:
                self.check()
            except Exception:  # a connection closed under its feet, say
                continue  # the watch must outlive any one look at its connections

    def check(self) -> None:
        """Ask the server of every connection that has waited `probe_after` seconds, and
        shut the connections to a server that does not answer. A connection made before
        the watch gave up on its server is shut as soon as it waits (its session is
        lost); those made since are left to the server's answer, which may be back."""
        now = self._clock()
        self._given_up = {s: t for s, t in self._given_up.items() if t > now - 60}
        with self._lock:
            connections = list(self._params.items())
        stale: dict[tuple, list[Any]] = {}
        doomed: list[Any] = []
        for conn, params in connections:
            if conn.closed or conn.pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
                self._since.pop(conn, None)
                continue
            since = self._since.setdefault(conn, now)
            server = tuple(sorted(params.items()))
            if self._born.get(conn, now) <= self._given_up.get(server, -1.0):
                doomed.append(conn)
            elif now - since >= self.limits.probe_after:
                stale.setdefault(server, []).append(conn)
        for server, waiting in stale.items():
            if self._probe(dict(server), self.limits.probe_timeout):
                for conn in waiting:  # working: ask again only after as long again
                    self._since[conn] = self._clock()
                continue
            self._given_up[server] = self._clock()
            waited = max(now - self._since.get(conn, now) for conn in waiting)
            self.gave_up = (self._clock(), waited + self.limits.probe_timeout)
            doomed.extend(waiting)
        for conn in doomed:
            _shut(conn)



def answers(params: dict[str, Any], timeout: int) -> bool:
    """Whether the server accepts a new connection within `timeout` seconds (a frozen
    one cannot complete the handshake)."""
    try:
        with psycopg.connect(**params, connect_timeout=timeout, autocommit=True):
            return True
    except psycopg.Error:
        return False


def _shut(conn: Any) -> None:
    """Shut the connection's socket: the call waiting on it returns an error at once."""
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # closed meanwhile


WATCH = Watch()
# A forked process (a worker of verify's, say) watches its own connections only: those it
# inherited belong to its parent, which watches them.
os.register_at_fork(after_in_child=lambda: WATCH.__init__(WATCH.limits))
