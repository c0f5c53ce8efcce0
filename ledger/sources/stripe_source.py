"""Stripe behind the source interface: the webhook's signature, one delivery, an export.

The records are read by `ledger.sources.stripe_records`, the mapping itself is
`ledger.sources.stripe`; this module decides what becomes of each record: canonical lines,
objects learned (discounts, coupons), or a record held for the quarantine with its reason.
Only a bad signature or a body that is not JSON is refused: Stripe retries a refused
delivery for three days, and the event would be lost to the ledger meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import orjson

from ledger.events import DELIVERY, InvalidEvent
from ledger.feed import Rejected
from ledger.jsontext import UnreadableJSON, read_json
from ledger.sources.base import (
    Delivery,
    Held,
    Ignored,
    Learned,
    Line,
    Lookup,
    RefusedDelivery,
    SignatureError,
    Source,
    SourceBase,
    header,
)
from ledger.sources.stripe import (
    NeedsObject,
    Policy,
    canonical_event,
    learned_objects,
    snapshot_of_export,
)
from ledger.sources.stripe_records import MAX_DEPTH, MAX_EVENT, read_records, stripe_id, too_large
from ledger.sources.stripe_terms import STRIPE_DEFAULT

TOLERANCE = 300  # seconds between Stripe signing and our check, either way
DRIFT = 5  # a timestamp further ahead of our clock than this is logged as clock drift
log = logging.getLogger("revledger.stripe")


# -- the webhook's signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
# each v1 an HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint's secret.

def verify(signature: str | None, body: bytes, secret: str, now: int | None = None) -> int:
    """Raise `SignatureError` unless one v1 signature matches and the timestamp is within
    the tolerance of our clock, behind or ahead (Stripe's clock and ours differ by a few
    seconds; the official library takes any timestamp ahead). Returns how far ahead of our
    clock it was (seconds; negative: behind)."""
    if not signature:
        raise SignatureError("missing Stripe-Signature header")
    pairs = [part.split("=", 1) for part in signature.split(",") if "=" in part]
    stamps = [value for key, value in pairs if key.strip() == "t"]
    signatures = [value.strip() for key, value in pairs if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        raise SignatureError("malformed Stripe-Signature header")
    stamp = stamps[0].strip()
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Every candidate is compared, in constant time, whatever matched before.
    matched = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    if not any(matched):
        raise SignatureError("no v1 signature matches")
    ahead = int(stamp) - (int(time.time()) if now is None else now)
    if abs(ahead) > TOLERANCE:
        raise SignatureError(f"timestamp {'ahead of' if ahead > 0 else 'behind'} this "
                             f"server's clock by {abs(ahead)} s, beyond the {TOLERANCE} s "
                             "tolerance")
    if ahead > DRIFT:
        log.warning("stripe: signature timestamp %d s ahead of this server's clock: "
                    "check the server's time (NTP)", ahead)
    return ahead


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A valid header, as Stripe would send it (for local tooling)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


# -- one record, whatever brought it -------------------------------------------------------

@dataclass
class Mapped:
    """What one Stripe record comes to."""

    lines: list[bytes] = field(default_factory=list)
    learned: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    held: tuple[str, str] | None = None  # (event id, reason)
    ignored: bool = False


def map_record(value: Any, lookup: Lookup, policy: Policy) -> Mapped:
    """An Event or Subscription object as canonical lines, learned objects, or a reason
    to hold it (never an exception: an unknown shape is held too)."""
    if not isinstance(value, dict):
        return Mapped(held=("-", "not a JSON object"))
    learned = learned_objects(value)
    known = dict(learned)

    def find(object_id: str) -> Mapping[str, Any] | None:
        return known.get(object_id) or lookup(object_id)

    try:
        if value.get("object") == "subscription":
            events = snapshot_of_export(value, find, policy)
        elif value.get("object") == "event" or "type" in value:
            one = canonical_event(value, find, policy)
            events = [] if one is None else [one]
        else:
            return Mapped(held=(stripe_id(value), "neither a Stripe Event nor a "
                                "Subscription object"), learned=learned)
    except InvalidEvent as bad:
        event_id = bad.event_id if bad.event_id != "-" else stripe_id(value)
        return Mapped(held=(event_id, bad.reason), learned=learned)
    except NeedsObject as missing:
        return Mapped(held=(stripe_id(value), str(missing)), learned=learned)
    return Mapped([orjson.dumps(e) for e in events], learned, ignored=not events)


def retry_record(raw: bytes, evidence: dict[str, Any] | None, lookup: Lookup,
                 policy: Policy) -> Mapped:
    """A held record mapped again (after an upgrade, or once what it needed is known),
    with its delivery evidence as when it first came."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Mapped(held=("-", "invalid JSON"))
    mapped = map_record(value, lookup, policy)
    if evidence is not None:
        mapped.lines = [_with_evidence(line, evidence) for line in mapped.lines]
    return mapped


def _with_evidence(line: bytes, evidence: dict[str, Any]) -> bytes:
    return orjson.dumps({**orjson.loads(line), DELIVERY: evidence})


# -- the source: the mapping, the signature and exports behind the one interface ----------

# Stripe's choices, as recorded (`source_settings`); the first value of each is Stripe's.
STRIPE_SETTINGS = {
    "repeating_coupons": ("ignore", "count"),
    "scheduled_cancellation": ("when_scheduled", "when_ended"),
}


def stripe_policy(settings: Mapping[str, str]) -> Policy:
    """The mapping's choices as the recorded settings say."""
    return Policy(repeating_coupons=settings.get("repeating_coupons") == "count",
                  cancel_when_scheduled=settings.get("scheduled_cancellation")
                  != "when_ended")


@dataclass(frozen=True)
class StripeSource(SourceBase):
    """Stripe, through its webhook (one signed Event object per delivery) or an export of
    Event or Subscription objects (a backfill): both go through the same mapping, so
    importing what the webhook already delivered stores nothing twice. It learns the
    discounts and coupons records refer to, and holds what it cannot map yet."""

    secret: str | None = field(default=None, repr=False)  # the endpoint's signing secret
    policy: Policy = STRIPE_DEFAULT
    name = "stripe"
    namespace = "stripe:"
    max_line = None  # bounded by MAX_EVENT as received: the stored line holds it twice
    translates = True
    max_body = MAX_EVENT  # a delivery is one event
    title = "Stripe"
    secret_env = "REVLEDGER_STRIPE_WEBHOOK_SECRET"
    settings = MappingProxyType(STRIPE_SETTINGS)
    learns = True
    quarantines = True
    imports = "stripe"
    import_help = """
    Record Stripe objects from FILE (- for stdin) through the same mapping as the
    webhook: Event objects (`stripe events list`, the last 30 days) and Subscription
    objects (`stripe subscriptions list --status all`, any age), as a JSON array, a list
    object or JSON Lines.

    Events of types that carry no revenue are counted as ignored. An event that cannot be
    recorded yet (a discount not known yet, an unknown shape, a conflict) is held in
    the quarantine, reported as `line N: EVENT_ID: held: reason`, and recorded by
    `revledger quarantine retry` once it can. Exit status 1 if any record was rejected
    (invalid JSON).
    """

    def configured(self, settings: Mapping[str, str]) -> Source:
        return replace(self, policy=stripe_policy(settings))

    def retry(self, raw: bytes, evidence: dict[str, Any] | None,
              lookup: Lookup) -> Delivery:
        mapped = retry_record(raw, evidence, lookup, self.policy)
        held = [] if mapped.held is None else [Held(1, *mapped.held, raw, evidence)]
        return Delivery(mapped.lines, ignored=not mapped.lines and not held,
                        learned=mapped.learned, held=held)

    def original(self, line: dict[str, Any]) -> Any:
        """The Event or Subscription object the line carries for the audit trail."""
        return line.get("stripe_event") or line.get("stripe_subscription") or line

    def parse(
        self, data: Iterable[bytes], lookup: Lookup | None = None
    ) -> Iterator[Line | Rejected | Ignored | Held | Learned]:
        """An export: a JSON array (or list object) of Event or Subscription objects,
        numbered by position, or JSON Lines, numbered by line. Objects learned early in
        the export serve the records after them."""
        known: dict[str, dict[str, Any]] = {}
        outer = lookup or _nothing

        def find(object_id: str) -> Mapping[str, Any] | None:
            return known.get(object_id) or outer(object_id)

        for record in read_records(data):
            if record.error is not None:
                yield Rejected(record.number, stripe_id(record.value), record.error,
                               record.raw)
                continue
            mapped = map_record(record.value, find, self.policy)
            if mapped.learned:
                known.update(mapped.learned)
                yield Learned(record.number, mapped.learned)
            if mapped.held is not None:
                yield Held(record.number, *mapped.held, record.raw)
            elif mapped.ignored:
                yield Ignored(record.number)
            for line in mapped.lines:
                yield record.number, line

    def delivery(
        self, body: bytes, headers: Mapping[str, str], lookup: Lookup | None = None
    ) -> Delivery:
        """One webhook delivery, checked against `Stripe-Signature` before it is read. The
        raw body and its signature are kept with the event (`_delivery`), so an auditor
        can check the HMAC later."""
        signature = header(headers, "stripe-signature")
        if self.secret is None:
            raise SignatureError("no webhook signing secret is configured")
        verify(signature, body, self.secret)
        if len(body) > MAX_EVENT:
            raise RefusedDelivery(too_large(len(body)))
        try:
            value = read_json(body, MAX_DEPTH)
        except UnreadableJSON as exc:
            raise RefusedDelivery(str(exc)) from None
        evidence = {"raw_body": body.decode(), "stripe_signature": signature}
        mapped = map_record(value, lookup or _nothing, self.policy)
        held = [] if mapped.held is None else [Held(1, *mapped.held, body, evidence)]
        return Delivery([_with_evidence(line, evidence) for line in mapped.lines],
                        ignored=mapped.ignored and not held, learned=mapped.learned,
                        held=held)


def _nothing(object_id: str) -> None:
    return None

