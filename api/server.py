"""How the API is served: uvicorn, with the limits a server on a network needs against
slow and greedy clients (docs/operations.md).

uvicorn times out only idle keep-alive connections: a client that sends half of its
headers, a byte every few seconds (slowloris), holds its connection forever, and a few
hundred of them hold the server. So each connection here gets deadlines of its own,
counted from when it opened (or from its previous response): the request's headers
within `header_timeout`, then its body within `body_timeout` more, or it is closed. And
at most `max_connections` are open at once: the next one is answered 503 and closed at
once, before a byte of it is read, so a flood costs the server nothing but the refusal.
Headers are also bounded in size (h11's 16 KiB), bodies per endpoint (api.app).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
              b"connection: close\r\n\r\n")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n"
         b"connection: close\r\n\r\n")


@dataclass(frozen=True)
class Limits:
    """The server's limits against slow and greedy clients (seconds, connections)."""

    header_timeout: float = 10.0  # a request's line and headers, from connect or reuse
    body_timeout: float = 30.0  # its body, after its headers (8 MiB at 280 KB/s)
    max_connections: int = 512  # open at once; the next one is refused with a 503
    keep_alive: int = 5  # an idle connection between requests is closed after this


def server(app: Any, host: str, port: int, limits: Limits = Limits(),
           log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for `app` that enforces `limits` on every connection."""

    class Guarded(GuardedH11Protocol):
        guard = limits

    config = uvicorn.Config(app, host=host, port=port, http=Guarded, log_level=log_level,
                            timeout_keep_alive=limits.keep_alive, lifespan="on")
    return uvicorn.Server(config)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each phase of a request that the
    client controls (sending headers, sending the body), and a cap on connections."""

    guard = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: Any = None  # the client's h11 state the timer runs out in
        if len(self.connections) > self.guard.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self._arm(h11.IDLE, self.guard.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():  # the next request's headers, from now
            self._arm(h11.IDLE, self.guard.header_timeout)
        super().on_response_complete()

    def _follow(self) -> None:
        """Move the deadline on as the client's side of the request moves on."""
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._waiting_for is not h11.SEND_BODY:
            self._arm(h11.SEND_BODY, self.guard.body_timeout)
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the request is in: answering it is the server's time

    def _arm(self, state: Any, seconds: float) -> None:
        self._disarm()
        self._waiting_for = state
        self._timer = self.loop.call_later(seconds, self._expired, state)

    def _disarm(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        self._timer = self._waiting_for = None

    def _expired(self, state: Any) -> None:
        self._timer = None
        if self.transport.is_closing() or self.conn.their_state is not state:
            return
        if state is h11.IDLE:  # no request is being answered: say why before closing
            self.transport.write(_TIMED_OUT)
        self.transport.close()
