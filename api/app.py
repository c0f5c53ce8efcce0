"""The HTTP API (Starlette): canonical events and billing sources' webhooks (Stripe's) in,
ledger health out.

Endpoints call the same services as the CLI; this module only speaks HTTP. What the
server does about slow clients and connection floods is api.server's.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from services.errors import LedgerError, printable
from services.ingest import Delivered, LedgerWriter
from services.sources import (
    CONFLICT,
    Endpoint,
    Outcome,
    RefusedDelivery,
    SignatureError,
    endpoint,
    webhooks,
)

log = logging.getLogger("revledger.http")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def create_app(url: str, token: str | None,
               secrets: Mapping[str, str | None] | None = None) -> Starlette:
    """`token` None means no authentication (`serve --no-auth`). `secrets`: each signed
    source's signing secret by its name (`{"stripe": ...}`); a source without one has
    its webhooks refused (503)."""
    secrets = dict(secrets or {})
    writer = LedgerWriter(url, secrets=secrets)

    def unavailable(exc: LedgerError, answer: dict[str, str]) -> Response:
        """503 with `answer`. What failed (the database's host, user and name) goes to the
        server's log, and to no client but the one holding the API token: health is
        unauthenticated, and Stripe shows answers in its dashboard."""
        log.warning("unavailable: %s", printable(str(exc)))
        return json_response(503, answer, {"Retry-After": "5"})

    async def health(request: Request) -> Response:
        try:
            head = await _threaded(writer.head)
        except LedgerError as exc:
            return unavailable(exc, {"status": "unavailable"})
        return json_response(200, {"status": "ok", "store": writer.kind(), "ledger_head": head})

    async def events(request: Request) -> Response:
        if token is not None and not _authorised(request, token):
            return json_response(401, {"error": "a valid Authorization: Bearer token is "
                                                "required"}, {"WWW-Authenticate": "Bearer"})
        return await deliver(endpoint("canonical"), request, detailed=token is not None)

    def webhook(hook: Endpoint) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def receive(request: Request) -> Response:
            if secrets.get(hook.name) is None:
                return json_response(503, {"error": f"{hook.title} webhooks are not "
                                                    f"configured ({hook.secret_env})"})
            return await deliver(hook, request, detailed=False)
        return receive

    async def deliver(source: Endpoint, request: Request, detailed: bool) -> Response:
        """The service's answer to one delivery, in HTTP, and its line in the log.
        `detailed`: a client holding the API token is told what failed (503)."""
        started = time.perf_counter()
        ids: list[str] = []
        try:
            body = await _body(request, source.max_body)
        except ClientDisconnect:  # e.g. closed by api.server for sending its body too slowly
            return Response(status_code=408)
        if body is None:
            return json_response(413, {"error": f"body larger than {source.max_body} bytes"})
        try:
            delivered: Delivered = await _threaded(writer.deliver, source.name, body,
                                                   request.headers)
        except SignatureError as exc:
            answer, outcome = json_response(400, {"error": f"signature: {exc}"}), \
                f"signature rejected: {exc}"
        except RefusedDelivery as exc:
            answer, outcome = json_response(400, {"error": str(exc)}), f"refused: {exc}"
        except LedgerError as exc:
            answer = unavailable(exc, {"error": str(exc) if detailed else "unavailable"})
            outcome = "unavailable"
        else:
            ids = [o.event_id for o in delivered.outcomes]
            if delivered.ignored:
                answer, outcome = json_response(200, {"results": [], "ignored": True}), \
                    "ignored"
            else:
                answer = _answer(delivered.outcomes)
                outcome = ",".join(sorted({o.status for o in delivered.outcomes}))
        # One line a request: never a header or a body (they may carry secrets), and
        # what it echoes of the request (ids, reasons) escaped: it stays one line.
        log.info("%s %s %d %s events=%s %.1f ms", request.method,
                 printable(request.url.path), answer.status_code, printable(outcome),
                 printable(",".join(ids[:10])) or "-", (time.perf_counter() - started) * 1000)
        return answer

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        writer.close()

    return Starlette(routes=[
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/events", events, methods=["POST"]),
        *(Route(f"/v1/webhooks/{hook.name}", webhook(hook), methods=["POST"])
          for hook in webhooks()),
    ], lifespan=lifespan)


def _answer(outcomes: list[Outcome]) -> Response:
    """200 when every event is recorded (accepted or duplicate) or held in the quarantine;
    else the worst: 400 for an invalid event, 409 for a conflict. Each event's outcome is
    in the body either way."""
    results = [{"line": o.line, "event_id": o.event_id, "status": o.status,
                **({"reason" if o.status == "quarantined" else "error": o.reason}
                   if o.reason else {})} for o in outcomes]
    statuses = {o.status for o in outcomes}
    if "rejected" in statuses:
        first = next(o for o in outcomes if o.status == "rejected")
        return json_response(400, {"error": f"line {first.line}: {first.event_id}: "
                                            f"{first.reason}", "results": results})
    if "conflict" in statuses:
        return json_response(409, {"error": CONFLICT, "results": results})
    if not outcomes:
        return json_response(400, {"error": "no events in the body", "results": []})
    return json_response(200, {"results": results})


def _authorised(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


async def _body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it passes `limit` bytes (the rest is not read)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _threaded(function: Any, *args: Any) -> Any:
    """Blocking ledger work off the event loop (Starlette's thread pool)."""
    return await run_in_threadpool(function, *args)
