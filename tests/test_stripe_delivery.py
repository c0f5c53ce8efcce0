"""Stripe through `revledger serve` (signed by the official `stripe` library) and through
`revledger import stripe`, on both stores: a subscription's whole life in order, reversed,
repeated and late gives Stripe's MRR; what cannot be recorded yet is held, never refused
nor lost; subscription exports backfill years of history.

Expected figures are worked by hand (the lifecycle's comments); none comes from the code.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import date
from fractions import Fraction

import orjson
import pytest
import stripe
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli import main
from ledger.sources import Held, Learned
from ledger.sources.stripe_source import StripeSource, retry_record
from ledger.sources.stripe_terms import Policy
from projections.reference import Event, Reference
from services.audit import customer_history
from services.errors import LedgerError
from services.metrics import mrr_report
from tests.stripe_fixtures import (
    DAY,
    LATEST,
    T0,
    VERSIONS,
    coupon,
    discount,
    event,
    item,
    price,
    subscription,
    tax_rate,
)
from tests.test_api import SECRET, server  # noqa: F401  (the server fixture, both stores)
from tests.test_stripe import TIERS

BASIL = "2025-03-31.basil"
END_2024 = "2024-12-31T23:59:59.999999Z"


def signed(body: bytes, at: int | None = None) -> dict[str, str]:
    """The Stripe-Signature header as Stripe makes it, by Stripe's own library."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), SECRET, int(time.time()) if at is None else at)
    return {"Stripe-Signature": header}


def webhook(client, stripe_event: dict, at: int | None = None):
    body = orjson.dumps(stripe_event)
    return client.post("/v1/webhooks/stripe", content=body, headers=signed(body, at))


def mrr(url: str, day: str) -> str:
    return mrr_report(url, date.fromisoformat(day))["mrr"]


def lifecycle(version: str = LATEST) -> list[dict]:
    """One customer's subscription through Stripe's lifecycle, at $29 a seat a month."""
    seat = price(version, cents=2900)
    yearly = price(version, "price_y", 120000, interval="year")
    c = coupon(version, "co_25", percent_off=25)
    d = discount(version, "di_25", c, start=T0 + 100 * DAY)

    def sub(**kw):
        return subscription(version, **kw)

    return [
        event(version, "evt_k", "customer.created",
              {"id": "cus_1", "object": "customer", "created": T0, "metadata": {}}, T0),
        event(version, "evt_1", "customer.subscription.created",  # trial: 0
              sub(status="trialing", trial_end=T0 + 14 * DAY, items=[item(version, seat)]),
              T0),
        event(version, "evt_2", "customer.subscription.updated",  # converts: 29
              sub(items=[item(version, seat)]), T0 + 14 * DAY, {"status": "trialing"}),
        event(version, "evt_3", "customer.subscription.updated",  # 4 seats: 116
              sub(items=[item(version, seat, 4)]), T0 + 40 * DAY, {"items": {}}),
        event(version, "evt_4", "customer.subscription.updated",  # $1,200 a year: 100
              sub(items=[item(version, yearly)]), T0 + 70 * DAY, {"items": {}}),
        event(version, "evt_c", "coupon.created", c, T0 + 100 * DAY),
        event(version, "evt_d", "customer.discount.created", d, T0 + 100 * DAY),
        event(version, "evt_5", "customer.subscription.updated",  # 25% off forever: 75
              sub(items=[item(version, yearly)], discounts=[d]), T0 + 100 * DAY,
              {"discounts": []}),
        event(version, "evt_6", "customer.subscription.paused",  # paused: 0
              sub(status="paused", items=[item(version, yearly)], discounts=[d]),
              T0 + 130 * DAY),
        event(version, "evt_7", "customer.subscription.resumed",  # back at 29
              sub(items=[item(version, seat)]), T0 + 160 * DAY),
        event(version, "evt_8", "customer.subscription.deleted",  # ended: 0
              sub(status="canceled", ended_at=T0 + 200 * DAY, canceled_at=T0 + 200 * DAY,
                  items=[item(version, seat)]), T0 + 200 * DAY),
    ]


EFFECTS = [("2024-01-10", "0.00"), ("2024-01-20", "29.00"), ("2024-02-15", "116.00"),
           ("2024-03-20", "100.00"), ("2024-04-20", "75.00"), ("2024-05-20", "0.00"),
           ("2024-06-20", "29.00"), ("2024-07-25", "0.00")]


def deliveries(kind: str, version: str = LATEST) -> list[dict]:
    events = lifecycle(version)
    if kind == "reversed":
        return events[::-1]
    if kind == "repeated and late":  # every event twice, shuffled: some days late
        twice = events + [{**e, "pending_webhooks": 2} for e in events]
        random.Random(7).shuffle(twice)
        return twice
    return events


@pytest.mark.parametrize("kind", ["in order", "reversed", "repeated and late"])
def test_serve_gives_stripes_mrr_however_deliveries_arrive(server, kind):  # noqa: F811
    for stripe_event in deliveries(kind):
        answer = webhook(server, stripe_event)
        assert answer.status_code == 200, answer.text
    assert [(day, mrr(server.db_url, day)) for day, _ in EFFECTS] == EFFECTS


@pytest.mark.parametrize("version", VERSIONS)
def test_serve_reads_every_api_version(server, version):  # noqa: F811
    for stripe_event in deliveries("reversed", version):
        assert webhook(server, stripe_event).status_code == 200
    assert [(day, mrr(server.db_url, day)) for day, _ in EFFECTS] == EFFECTS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["in order", "reversed", "repeated and late"])
def test_import_stripe_gives_the_same_mrr(db_url, kind, version):
    body = orjson.dumps(deliveries(kind, version))
    result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    assert result.exit_code == 0, result.stderr
    assert [(day, mrr(db_url, day)) for day, _ in EFFECTS] == EFFECTS
    again = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    assert "accepted 0," in again.stderr
    if kind == "reversed" and version == LATEST:  # what was recorded still verifies
        assert CliRunner().invoke(main, ["--db", db_url, "verify"]).exit_code == 0


def test_a_discount_not_known_yet_is_quarantined_then_recorded_when_it_comes(server):  # noqa: F811
    c = coupon(BASIL, "co_20", percent_off=20)
    d = discount(BASIL, "di_1", c)
    sub = subscription(BASIL, items=[item(BASIL, price(BASIL, cents=10000))], discounts=[d])
    first = webhook(server, event(BASIL, "evt_s", "customer.subscription.created", sub, T0))
    assert first.status_code == 200
    (result,) = first.json()["results"]
    assert (result["status"], result["event_id"]) == ("quarantined", "stripe:evt_s")
    assert "needs discount di_1" in result["reason"]
    listed = CliRunner().invoke(main, ["--db", server.db_url, "quarantine", "list",
                                       "--format", "json"])
    assert [r["event_id"] for r in orjson.loads(listed.stdout)] == ["stripe:evt_s"]
    assert mrr(server.db_url, "2024-01-31") == "0.00"
    webhook(server, event(BASIL, "evt_d", "customer.discount.created", d, T0))
    assert mrr(server.db_url, "2024-01-31") == "80.00"  # released as soon as it was known
    listed = CliRunner().invoke(main, ["--db", server.db_url, "quarantine", "list",
                                       "--format", "json"])
    assert orjson.loads(listed.stdout) == []


def test_another_currency_is_recorded_in_it_and_converted_at_the_rate_in_force(db_url):
    """contract v2: a EUR price is recorded as it is, in EUR (no quarantine); a figure
    converts it once the ledger holds a rate, and says so plainly until then."""
    euros = subscription(items=[item(LATEST, price(cents=5000, currency="eur"))])
    body = orjson.dumps([event(LATEST, "evt_e", "customer.subscription.created", euros, T0)])
    result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    assert result.exit_code == 0, result.stderr
    assert "accepted 1" in result.stderr
    with pytest.raises(LedgerError, match=r"^no exchange rate EUR->USD in force at "):
        mrr(db_url, "2024-01-31")
    rate = orjson.dumps({"event_id": "r1", "type": "fx.rate", "base": "EUR", "quote": "USD",
                         "effective_at": "2024-01-01T00:00:00Z", "rate": "1.1"})
    assert CliRunner().invoke(main, ["--db", db_url, "ingest", "-"], input=rate).exit_code == 0
    assert mrr(db_url, "2024-01-31") == "55.00"


def test_only_a_bad_signature_or_body_is_refused(server):  # noqa: F811
    broken = orjson.dumps(event(LATEST, "evt_b", "customer.subscription.updated",
                                {"id": "sub_9", "object": "subscription"}, T0))
    held = server.post("/v1/webhooks/stripe", content=broken, headers=signed(broken))
    assert (held.status_code, held.json()["results"][0]["status"]) == (200, "quarantined")
    not_json = b"{not json"
    assert server.post("/v1/webhooks/stripe", content=not_json,
                       headers=signed(not_json)).status_code == 400


@pytest.mark.parametrize("offset,accepted", [(200, True), (-200, True), (400, False),
                                             (-301, False)])
def test_a_timestamp_ahead_of_our_clock_within_tolerance_is_accepted(
        server, caplog, offset, accepted):  # noqa: F811
    created = event(LATEST, "evt_t", "customer.subscription.created", subscription(), T0)
    with caplog.at_level(logging.INFO):
        answer = webhook(server, created, at=int(time.time()) + offset)
    assert (answer.status_code == 200) is accepted
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("revledger")]
    request_line = next(m for m in lines if m.startswith("POST /v1/webhooks/stripe"))
    assert SECRET not in "\n".join(lines) and "v1=" not in "\n".join(lines)
    if accepted:
        assert " 200 accepted events=stripe:evt_t " in request_line
        assert request_line.endswith(" ms")
        assert any("ahead of this server's clock" in m for m in lines) is (offset > 0)
    else:
        assert " 400 signature rejected: timestamp " in request_line


# -- backfill: Subscription objects of any age ---------------------------------------------

def exported() -> list[dict]:
    """`stripe subscriptions list --status all`: one paying since 2022 (2 seats, 20% off
    forever, its discount expanded), one cancelled in 2023, one trialing."""
    c = coupon(LATEST, "co_20", percent_off=20)
    d = discount(LATEST, "di_1", c, start=1_640_995_200)
    d["source"]["coupon"] = c  # expand[]=data.discounts.source.coupon
    paying = subscription(LATEST, "sub_a", "cus_a", start=1_640_995_200,  # 2022-01-01
                          items=[item(LATEST, price(cents=2900), 2)], discounts=[d])
    paying["discounts"] = [d]  # expand[]=data.discounts
    gone = subscription(LATEST, "sub_b", "cus_b", status="canceled", start=1_640_995_200,
                        ended_at=1_685_577_600, canceled_at=1_685_577_600,  # 2023-06-01
                        items=[item(LATEST, price(cents=5000), 1)])
    trial = subscription(LATEST, "sub_c", "cus_c", status="trialing", start=T0,
                         trial_end=T0 + 30 * DAY, items=[item(LATEST, price(cents=9900))])
    return [paying, gone, trial]


@pytest.mark.parametrize("layout", ["array", "json lines", "list object"])
def test_subscription_exports_backfill_years_of_history(db_url, layout):
    subs = exported()
    body = {"array": orjson.dumps(subs),
            "json lines": b"\n".join(orjson.dumps(s) for s in subs) + b"\n",
            "list object": orjson.dumps({"object": "list", "data": subs,
                                         "has_more": False})}[layout]
    result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    assert result.exit_code == 0, result.stderr
    assert mrr(db_url, "2022-06-30") == "96.40"  # 2 x 29 x 0.8 + 50
    assert mrr(db_url, "2023-06-30") == "46.40"  # sub_b ended on 2023-06-01
    assert mrr(db_url, "2024-01-15") == "46.40"  # sub_c still trialing: not MRR
    again = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"], input=body)
    assert "accepted 0," in again.stderr


def test_settings_are_recorded_and_shown(sqlite_url):
    chosen = CliRunner().invoke(main, ["--db", sqlite_url, "stripe-settings",
                                       "--repeating-coupons", "count", "--format", "json"])
    assert orjson.loads(chosen.stdout) == {"repeating_coupons": "count",
                                           "scheduled_cancellation": "when_scheduled"}
    changed = CliRunner().invoke(main, ["--db", sqlite_url, "stripe-settings",
                                        "--repeating-coupons", "ignore"])
    assert changed.exit_code == 1
    assert "already 'count'" in changed.stderr


# -- any delivery order: a property ---------------------------------------------------------

def recorded_in_any_order(delivered: list[dict]) -> Reference:
    """What the ledger ends up holding of these deliveries, read as an export is (objects
    learned early serve the records after them; what was held is mapped again once all
    are known; a repeated event id is a duplicate), as the reference fold."""
    recorded: dict[str, dict] = {}
    learned: dict[str, dict] = {}
    held: list[bytes] = []
    for item_ in StripeSource().parse([orjson.dumps(e) + b"\n" for e in delivered]):
        if isinstance(item_, Learned):
            learned.update(item_.objects)
        elif isinstance(item_, Held):
            held.append(item_.raw)
        elif isinstance(item_, tuple):
            line = orjson.loads(item_[1])
            recorded.setdefault(line["event_id"], line)
    for raw in held:
        again = retry_record(raw, None, learned.get, Policy())
        assert again.held is None
        for line in map(orjson.loads, again.lines):
            recorded.setdefault(line["event_id"], line)
    return Reference(Event(i, "2024-01-01T00:00:00.000000Z", r)
                     for i, r in enumerate(recorded.values(), 1))


@given(st.permutations(range(len(lifecycle()))), st.lists(st.integers(0, 10), max_size=6))
def test_any_delivery_order_gives_stripes_final_mrr(order, repeats):
    """The lifecycle's events in any order, some twice: the hand-worked MRR each day."""
    events = lifecycle()
    reference = recorded_in_any_order([events[i] for i in order] +
                                      [events[i] for i in repeats])
    assert [(day, reference.mrr(date.fromisoformat(day))[0]) for day, _ in EFFECTS] == \
        [(day, Fraction(v)) for day, v in EFFECTS]


@given(st.data())
def test_any_delivery_order_of_every_case_gives_its_mrr(data):
    """Every worked case's events, all together, in any order: each its hand-worked MRR."""
    worked = cases()
    everything = [e for events, _ in worked.values() for e in events]
    reference = recorded_in_any_order(data.draw(st.permutations(everything)))
    got = {c.removeprefix("cus_"): round(reference.value(h.mrr_at(END_2024), END_2024), 2)
           for c, h in reference.histories.items()}
    assert got == {name: Fraction(expected) for name, (_, expected) in worked.items()}


# -- one worked case per rule, through both doors --------------------------------------------

def _case(name: str, *objects: tuple[str, dict], version: str = LATEST,
          at: int = T0) -> list[dict]:
    """The events of one case, for customer `cus_<name>`: (type, object) in delivery
    order, each its own event id."""
    return [event(version, f"evt_{name}_{n}", kind, obj, at)
            for n, (kind, obj) in enumerate(objects)]


def cases() -> dict[str, tuple[list[dict], str]]:
    """Each rule's worked case: its events, and the customer's MRR after them (by hand)."""
    def sub(name: str, *items_: dict, version: str = LATEST, **kw) -> dict:
        return subscription(version, f"sub_{name}", f"cus_{name}",
                            items=list(items_) or [item(version, price(version))], **kw)

    v, old = LATEST, "2023-10-16"
    c20 = coupon(v, "co_case", percent_off=20)
    d20 = discount(v, "di_case", c20, customer="cus_clover", subscription="sub_clover")
    old_forever = discount(old, "di_old", coupon(old, "co_old", percent_off=20),
                           customer="cus_forever")
    old_repeating = discount(old, "di_rep", coupon(old, "co_rep", percent_off=20,
                                                   duration="repeating", months=3),
                             end=T0 + 90 * DAY, customer="cus_repeating")
    tiered = price(v, "price_t", None, tiers=TIERS, tiers_mode="graduated")
    per_five = price(v, "price_5", 1000, transform={"divide_by": 5, "round": "up"})
    vat = tax_rate(v, 19, inclusive=True)
    C, U = "customer.subscription.created", "customer.subscription.updated"
    metered = item(v, price(v, "price_api", 7, usage_type="metered"), None)
    taxed = item(v, price(v, cents=11900), 1, tax_rates=[vat])
    sub_cent = item(v, price(v, cents=None, decimal="12.3456789"), 100_000)
    yearly, monthly = price(v, "price_y", 12000, interval="year"), price(v, "price_m", 1500)
    old_item = item(old, price(old, cents=10000))
    at_45 = item(v, price(v, cents=4500))
    worked = {  # name: ([(type, object) in delivery order], MRR after them), by hand
        "past_due": ([(U, sub("past_due", status="past_due"))], "29.00"),
        "unpaid": ([(U, sub("unpaid", status="unpaid"))], "0.00"),
        "metered": ([(C, sub("metered", item(v, price(v, cents=5000)), metered))], "50.00"),
        "tax": ([(C, sub("tax", taxed))], "100.00"),  # 119 / 1.19
        "transform": ([(C, sub("transform", item(v, per_five, 12)))], "30.00"),
        "zero": ([(C, sub("zero", item(v, price(v), 0)))], "0.00"),
        "decimal": ([(C, sub("decimal", sub_cent))], "12345.68"),  # 12,345.6789
        "tiered": ([(C, sub("tiered", item(v, tiered, 12)))], "120.00"),  # 50 + 40 + 10 + 20
        "mixed": ([(C, sub("mixed", item(v, yearly), item(v, monthly)))], "25.00"),
        "forever": ([(C, sub("forever", old_item, version=old, discounts=[old_forever]))],
                    "80.00"),
        "repeating": ([(C, sub("repeating", old_item, version=old,
                               discounts=[old_repeating]))], "100.00"),
        "scheduled": ([(U, sub("scheduled", cancel_at_period_end=True, canceled_at=T0))],
                      "0.00"),
        "same_second": ([(U, sub("same_second", at_45)),  # the update is delivered first
                         (C, sub("same_second", at_45, status="incomplete"))], "45.00"),
        "clover": ([(C, sub("clover", item(v, price(v, cents=10000)), discounts=[d20])),
                    ("customer.discount.created", d20), ("coupon.created", c20)], "80.00"),
    }
    return {name: (_case(name, *objects, version=old if name in ("forever", "repeating")
                         else v), mrr_)
            for name, (objects, mrr_) in worked.items()}


def final_mrr(url: str, customer: str) -> str:
    return customer_history(url, customer)["events"][-1]["mrr_after"]


@pytest.mark.parametrize("door", ["import", "serve"])
def test_each_rule_through_import_and_serve(db_url, door, request):
    worked = cases()
    everything = [e for events, _ in worked.values() for e in events]
    if door == "import":
        result = CliRunner().invoke(main, ["--db", db_url, "import", "stripe", "-"],
                                    input=orjson.dumps(everything))
        assert result.exit_code == 0, result.stderr
    else:
        client = request.getfixturevalue("server")
        for stripe_event in everything:
            assert webhook(client, stripe_event).status_code == 200
    assert {name: final_mrr(db_url, f"cus_{name}") for name in worked} == \
        {name: expected for name, (_, expected) in worked.items()}


def test_the_documented_ingest_role_imports_stripe_and_holds_without_create(pg_url):
    """docs/operations.md's roles: the ingest role records Stripe, learns its discounts
    and keeps its quarantine without any CREATE privilege."""
    import re
    import uuid
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    docs = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- roles:.*?-->\n```sql\n(.*?)```", docs, re.S).group(1)
    role = f"revledger_ingest_{uuid.uuid4().hex[:8]}"
    block = block.replace("revledger_ingest", role).replace("revledger_analyst",
                                                             role + "_a")
    CliRunner().invoke(main, ["--db", pg_url, "import", "stripe", "-"],  # the owner creates
                       input=orjson.dumps(lifecycle()[:1]))  # the schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(block)
    parts = urlsplit(pg_url)
    as_ingest = urlunsplit(parts._replace(
        netloc=f"{role}:change-me@{parts.hostname}:{parts.port}"))
    broken = {"id": "sub_9", "object": "subscription"}  # held: nothing to map it from
    body = orjson.dumps([*lifecycle(), event(LATEST, "evt_b", "customer.subscription.updated",
                                             broken, T0)])
    try:
        result = CliRunner().invoke(main, ["--db", as_ingest, "import", "stripe", "-"],
                                    input=body)
        assert result.exit_code == 0, result.stderr
        assert "held 1" in result.stderr
        assert mrr(pg_url, "2024-04-20") == "75.00"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for name in (role, role + "_a"):
                conn.execute(f"DROP OWNED BY {name}")
                conn.execute(f"DROP ROLE {name}")


def test_revledger_serve_logs_one_line_a_request_and_no_secret(sqlite_url):
    """The real command: a signed webhook and a forged one, each one line on stderr."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "REVLEDGER_API_TOKEN": "t", "REVLEDGER_STRIPE_WEBHOOK_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "--db", sqlite_url, "serve", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1/webhooks/stripe"
    body = orjson.dumps(lifecycle()[1])
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None
            try:
                answer = httpx.post(url, content=body, headers=signed(body), timeout=30)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "revledger serve did not come up"
                time.sleep(0.05)
        assert answer.status_code == 200
        forged = httpx.post(url, content=body, headers={"Stripe-Signature": "t=1,v1=00"},
                            timeout=30)
        assert forged.status_code == 400
    finally:
        process.terminate()
        stderr = process.communicate(timeout=30)[1].decode()
    lines = [line for line in stderr.splitlines() if "POST /v1/webhooks/stripe" in line]
    assert len(lines) == 2, stderr
    assert " 200 accepted events=stripe:evt_1 " in lines[0]
    assert " 400 signature rejected: " in lines[1]
    assert SECRET not in stderr and "v1=" not in stderr
