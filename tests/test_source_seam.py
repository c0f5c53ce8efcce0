"""A second signed billing source with a quarantine is one module and its registration:
the services, the HTTP API and the command line take it from the registry's capabilities
(ledger.sources.base: `SourceBase`), with nothing of it written anywhere else.

Acme is a test double, not a vendor: its records are made up for this seam (a
subscription that names a plan, and the plan objects it learns the amount from), signed
as HMAC-SHA256 of the body in an `Acme-Signature` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from api.app import create_app
from cli import main
from ledger.feed import Rejected
from ledger.sources import (
    SOURCES,
    Delivery,
    Held,
    Learned,
    Line,
    Lookup,
    SignatureError,
    SourceBase,
    channel,
)
from ledger.sources.base import header
from services.events import list_events
from services.ingest import ingest_feed
from services.quarantine import held_records, source_settings
from services.sources import Endpoint, Importer, importers, webhooks
from tests.feeds import started

SECRET = "acme-secret"
TOKEN = "token"
PLAN = {"object": "plan", "id": "p1", "amount": "25.00"}
SUBSCRIPTION = {"object": "subscription", "id": "a1", "customer": "c1", "plan": "p1",
                "at": "2024-01-01T00:00:00Z"}


def _nothing(object_id: str) -> None:
    return None


@dataclass(frozen=True)
class AcmeSource(SourceBase):
    """The whole of a signed source with learned objects, a quarantine and a setting."""

    secret: str | None = None
    interval: str = "month"
    name = "acme"
    namespace = "acme:"
    translates = True
    max_body = 4096
    title = "Acme"
    secret_env = "REVLEDGER_ACME_SECRET"
    settings = MappingProxyType({"interval": ("month", "year")})
    learns = True
    quarantines = True
    imports = "acme"
    import_help = "Record Acme records from FILE."

    def configured(self, settings: Mapping[str, str]) -> AcmeSource:
        return replace(self, interval=settings["interval"])

    def parse(self, data: Iterable[bytes], lookup: Lookup | None = None
              ) -> Iterator[Line | Rejected | Held | Learned]:
        known: dict[str, Any] = {}
        for number, raw in enumerate(data, 1):
            mapped = self.retry(raw.strip(), None, lambda i: known.get(i) or (lookup or
                                                                            _nothing)(i))
            if mapped.learned:
                known.update(mapped.learned)
                yield Learned(number, mapped.learned)
            yield from (replace(h, line=number) for h in mapped.held)
            yield from ((number, line) for line in mapped.lines)

    def delivery(self, body: bytes, headers: Mapping[str, str],
                 lookup: Lookup | None = None) -> Delivery:
        expected = hmac.new((self.secret or "").encode(), body, hashlib.sha256).hexdigest()
        if self.secret is None or not hmac.compare_digest(
                expected, header(headers, "acme-signature") or ""):
            raise SignatureError("no valid Acme-Signature")
        return self.retry(body, None, lookup or _nothing)

    def retry(self, raw: bytes, evidence: dict[str, Any] | None, lookup: Lookup) -> Delivery:
        record = orjson.loads(raw)
        if record["object"] == "plan":
            return Delivery([], learned=[(record["id"], record)])
        plan = lookup(record["plan"])
        if plan is None:
            return Delivery([], held=[Held(1, f"acme:{record['id']}",
                                           f"plan {record['plan']} not known yet", raw)])
        return Delivery([orjson.dumps(started(
            f"acme:{record['id']}", record["id"], record["customer"], record["at"],
            plan["amount"], interval=self.interval))])


@pytest.fixture
def acme(monkeypatch) -> None:
    """Acme's registration: its line in ledger.sources.SOURCES."""
    monkeypatch.setitem(SOURCES, "acme", AcmeSource)


def signed(record: dict) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(record)
    return body, {"Acme-Signature": hmac.new(SECRET.encode(), body,
                                             hashlib.sha256).hexdigest()}


def test_the_registry_exposes_its_webhook_import_and_namespace(acme):
    assert Endpoint("acme", "Acme", 4096, "REVLEDGER_ACME_SECRET") in webhooks()
    assert Importer("acme", "acme", "Record Acme records from FILE.") in importers()
    assert channel("acme").namespace == "acme:"
    assert "acme:" in channel("canonical").reserved  # no other channel takes its ids


def posted(app: Starlette, *requests: tuple[bytes, dict[str, str]]) -> list[httpx.Response]:
    """Each (body, headers) posted to /v1/webhooks/acme in turn, the app's lifespan
    around them (in this process: httpx's ASGI transport, no socket)."""

    async def post() -> list[httpx.Response]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://local") as client:
            return [await client.post("/v1/webhooks/acme", content=body, headers=headers)
                    for body, headers in requests]

    return asyncio.run(post())


def test_its_webhook_is_signed_bounded_and_holds_what_it_cannot_map_yet(acme, db_url):
    (unconfigured,) = posted(create_app(db_url, TOKEN), signed(SUBSCRIPTION))
    assert unconfigured.status_code == 503
    assert unconfigured.json() == {"error": "Acme webhooks are not configured "
                                            "(REVLEDGER_ACME_SECRET)"}
    unsigned, large, held, learned = posted(
        create_app(db_url, TOKEN, {"acme": SECRET}), (signed(SUBSCRIPTION)[0], {}),
        (b" " * 4097, {}), signed(SUBSCRIPTION), signed(PLAN))
    assert unsigned.status_code == 400
    assert unsigned.json() == {"error": "signature: no valid Acme-Signature"}
    assert large.status_code == 413
    assert held.status_code == 200
    assert held.json() == {"results": [{"line": 1, "event_id": "acme:a1",
                                        "status": "quarantined",
                                        "reason": "plan p1 not known yet"}]}
    # The plan learned from the next delivery: the held subscription recorded at once.
    assert learned.json() == {"results": [], "ignored": True}
    (recorded,) = list_events(db_url)
    assert (recorded["event_id"], recorded["payload"]["amount"]) == ("acme:a1", "25.00")
    assert held_records(db_url) == []


def test_its_export_is_imported_under_the_settings_the_ledger_records(acme, db_url):
    assert source_settings(db_url, "acme") == {"interval": "month"}
    assert source_settings(db_url, "acme", {"interval": "year"}) == {"interval": "year"}
    result = ingest_feed(db_url, [orjson.dumps(SUBSCRIPTION) + b"\n",
                                  orjson.dumps(PLAN) + b"\n"], source="acme")
    assert (result.summary.accepted, result.held, result.released) == (0, 1, 1)
    (recorded,) = list_events(db_url)
    assert (recorded["event_id"], recorded["payload"]["interval"]) == ("acme:a1", "year")


@dataclass(frozen=True)
class LearningAcme(AcmeSource):
    """Acme as a source that learns objects but has no quarantine."""

    quarantines = False


def test_a_source_that_learns_without_a_quarantine_keeps_what_it_learns(monkeypatch, db_url):
    """Learning is a capability of its own: the plan delivered first is kept, and the
    subscription delivered next is mapped with it."""
    monkeypatch.setitem(SOURCES, "acme", LearningAcme)
    learned, recorded = posted(create_app(db_url, TOKEN, {"acme": SECRET}), signed(PLAN),
                               signed(SUBSCRIPTION))
    assert learned.json() == {"results": [], "ignored": True}
    assert recorded.json() == {"results": [{"line": 1, "event_id": "acme:a1",
                                            "status": "accepted"}]}
    (event,) = list_events(db_url)
    assert event["payload"]["amount"] == "25.00"


def test_its_settings_are_shown_and_chosen_from_the_command_line(acme, sqlite_url):
    """`revledger settings SOURCE NAME=VALUE`: the registry's choices, checked, in one
    line when wrong (exit 1), recorded when right."""
    def settings(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--db", sqlite_url, "settings", "acme", *args,
                                           "--format", "json"])
        return result.exit_code, result.output

    assert settings("interval=week") == (1, "revledger: interval: one of month, year\n")
    assert settings("plan=gold")[1].startswith("revledger: plan: not a setting of acme")
    assert settings("interval") == (1, "revledger: interval: expected NAME=VALUE\n")
    assert json.loads(settings()[1]) == {"interval": "month"}
    assert json.loads(settings("interval=year")[1]) == {"interval": "year"}
    assert source_settings(sqlite_url, "acme") == {"interval": "year"}
