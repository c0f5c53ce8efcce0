"""Every stored event held again, after the fact, to what ingest held it to.

The chain (`ledger.chain`) proves that the stored bytes are the ones linked, not that they
were ever allowed in: a row written around ingest (a plain INSERT by a role that may
append, its link computed like any other) chains as well as a real one. So `verify` also
reads each stored event back and holds it to:

- the contract: its payload validated again by `ledger.events` (a negative amount, a
  naive instant, an unknown type... are named with the contract's reason);
- itself: the envelope the projections read (event id, type, effective instant) is its
  payload's;
- its index row (`event_keys`, which the projections read to file events by customer and
  ingest reads to decide duplicates and voids): recomputed from the event's bytes and
  compared column by column, so an index row edited, deleted or added is named;
- its place: the stream its subscription (else its customer; for an exchange rate, its
  own id) names, opened by version 1;
- the recording rules that can be checked after the fact: event ids unique; a void's
  target recorded before it, not a void, voided once, and the void filed under its
  target's customer and subscription; a subscription keeps the customer its first event
  named; each stream's versions run
  1, 2, 3... in recorded order.

It shares no code with what it checks (ingest's reading of a line in `ledger.checks`, its
rules in `ledger.rules`, its index rows in `ledger.ingest`, the projections' decoder): it
uses only the contract (`ledger.events`, `ledger.kinds`) that they all follow, and
recomputes stream ids from their documented definition. What no check of the stored rows
can see (a valid event forged with its links recomputed, a cut-off tail) is listed in
docs/audit.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson

from ledger.audit_queries import AuditQueries
from ledger.events import InvalidEvent, content_hash, parse_event
from ledger.kinds import FX_RATE, SUBSCRIPTION_TYPES, VOID

# Stream (aggregate) ids, as documented in docs/audit.md: uuid5 of "subscription:" + id,
# "customer:" + id, or for an exchange rate "rate:" + its event id, in the namespace
# uuid5(URL, "https://revledger.dev/ids").
_NAMESPACE = uuid5(NAMESPACE_URL, "https://revledger.dev/ids")
_SETTINGS_TOPIC = "ledger.aggregates:Ledger.Opened"
_INDEX = ("event_id", "content_sha256", "type", "customer_id", "subscription_id", "voids")


@dataclass(frozen=True)
class Break:
    """The first stored event found breaking a rule (position None: not one event's)."""

    position: int | None
    event_id: str | None
    problem: str


@dataclass
class Recheck:
    """What was held to the contract and the rules, and the first break if any."""

    events: int = 0  # canonical events validated, their index rows compared
    voids: int = 0  # voids held to their targets
    problem: Break | None = None


def recheck(recorder: AuditQueries) -> Recheck:
    """Stops at the first break: each stored event in position order, then the index's
    extra rows, then the rules across events."""
    out = Recheck()
    out.problem = each_event(recorder.iter_indexed(), out) or _extra(recorder, out) or _rules(
        recorder, out)
    return out


def each_event(rows: Iterable[tuple], out: Recheck) -> Break | None:
    """The first stored event, in position order, that breaks the contract, is not what
    its index row says, or is out of its place, from `AuditQueries.iter_indexed` rows
    (pure: the store is read by the caller)."""
    currency: str | None = None
    settings: int | None = None
    last = None
    for position, aggregate, version, topic, state, *key in rows:
        if position == last:
            return Break(position, key[1], "a second index row for the same event")
        last = position
        try:
            data = orjson.loads(state)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return Break(position, None, "its stored state is not a JSON object")
        if "payload" not in data and "event_id" not in data:  # the ledger's settings
            if settings is not None:
                return Break(position, None, "a second settings event of the ledger (the "
                             f"first is at position {settings})")
            problem = _settings_problem(aggregate, version, topic, data, key[0])
            if problem is not None:
                return Break(position, None, problem)
            settings, currency = position, data["currency"]
            continue
        out.events += 1
        problem = _event_problem(aggregate, version, topic, data, key, currency)
        if problem is not None:
            event_id = data.get("event_id")
            return Break(position, event_id if isinstance(event_id, str) else None, problem)
    return None


def _hex(aggregate: Any) -> str:
    return aggregate.hex if isinstance(aggregate, UUID) else str(aggregate).replace("-", "")


def _settings_problem(aggregate: Any, version: int, topic: str, data: dict[str, Any],
                      indexed: int | None) -> str | None:
    currency = data.get("currency")
    if (topic != _SETTINGS_TOPIC or version != 1
            or _hex(aggregate) != uuid5(_NAMESPACE, "ledger").hex
            or not (isinstance(currency, str) and len(currency) == 3
                    and currency.isascii() and currency.isupper())):
        return "neither a canonical event nor the ledger's settings"
    if indexed is not None:
        return "the ledger's settings have an index row"
    return None


def _event_problem(aggregate: Any, version: int, topic: str, data: dict[str, Any],
                   key: list[Any], currency: str | None) -> str | None:
    """What is wrong with one stored canonical event, its index row and its place."""
    payload = data.get("payload")
    try:
        event = parse_event(payload)
    except InvalidEvent as bad:
        return f"breaks the contract: {bad.reason}"
    for field in ("event_id", "type", "effective_at"):
        if data.get(field) != event.get(field):
            return (f"its stored {field} ({data.get(field)!r}) is not its payload's "
                    f"({event.get(field)!r})")
    type_ = event["type"]
    if key[0] is None:
        return "it has no index row: the projections do not see it"
    if type_ == VOID:  # filed under its target's customer and subscription (see `_rules`)
        customer, subscription, voids = key[4], key[5], event["voids"]
    else:
        # every type but a void and an exchange rate has one (contract v2)
        customer = None if type_ == FX_RATE else event.get("customer_id")
        subscription = event["subscription_id"] if type_ in SUBSCRIPTION_TYPES else None
        voids = None
    expected = (event["event_id"], content_hash(payload), type_, customer, subscription, voids)
    stored = tuple(key[1:])
    if stored != expected:
        name, held, says = next(d for d in zip(_INDEX, stored, expected, strict=True)
                                if d[1] != d[2])
        return f"its index row differs from its stored bytes ({name}: {held!r}, the event " \
               f"says {says!r})"
    # contract v2: any active currency (`parse_event` held it to the ISO list above)
    rate = event["event_id"] if type_ == FX_RATE else None
    return _place_problem(aggregate, version, topic, data, customer, subscription, rate)


def _place_problem(aggregate: Any, version: int, topic: str, data: dict[str, Any],
                   customer: str | None, subscription: str | None,
                   rate: str | None = None) -> str | None:
    """A stream's first version opens it: the stream of its subscription (else of its
    customer), naming the customer a subscription belongs to. (That each later version
    is about the same subscription or customer is checked across events, `_rules`.)"""
    if (version == 1) != topic.endswith(".Opened"):
        return f"version {version} of its stream is stored as {topic!r}"
    if version != 1:
        return None
    if subscription is None and customer is None and rate is None:
        return "its index row names neither a customer nor a subscription"
    name = ("subscription:" + subscription if subscription is not None
            else "customer:" + customer if customer is not None
            else "rate:" + rate)  # type: ignore[operator]
    if _hex(aggregate) != uuid5(_NAMESPACE, name).hex:
        return f"it opens another stream than that of {name.replace(':', ' ', 1)}"
    if data.get("key") != name.split(":", 1)[1] or (
            subscription is not None and data.get("customer_id") != customer):
        return "its stream's opening names another subscription, customer or owner"
    return None


def _extra(recorder: AuditQueries, out: Recheck) -> Break | None:
    """Index rows beyond one per canonical event: rows of no event."""
    if recorder.count_keys() == out.events:
        return None
    orphan = recorder.index_without_event()
    if orphan is None:
        return Break(None, None, "the index holds more rows than there are events")
    return Break(orphan[0], orphan[1], "an index row at a position that holds no event")


def _rules(recorder: AuditQueries, out: Recheck) -> Break | None:
    """The recording rules across events, read from the index (now known to be the
    events' own rows)."""
    if (repeated := recorder.repeated_event_id()) is not None:
        position, event_id, first = repeated
        return Break(position, event_id, f"event_id already recorded at position {first}")
    voided: dict[str, str] = {}
    for position, event_id, target, customer, subscription, *of_target in (
            recorder.voids_and_targets()):
        out.voids += 1
        problem = _void_problem(position, target, (customer, subscription), of_target,
                                voided)
        if problem is not None:
            return Break(position, event_id, problem)
        voided[target] = event_id
    if (moved := recorder.subscription_changing_hands()) is not None:
        position, event_id, subscription, customer, owner = moved
        return Break(position, event_id, f"customer_id: subscription {subscription!r} "
                     f"belongs to customer {owner!r}, not {customer!r}")
    if (step := recorder.stream_out_of_step()) is not None:
        position, version, previous, name, first = step
        if name != first:
            problem = (f"it is stored in the stream of {_named(first)}, not in that of "
                       f"{_named(name)}")
        else:
            problem = (f"version {version} of its stream follows version {previous or 0} "
                       "(a stream's versions run 1, 2, 3... in recorded order)")
        return Break(position, recorder.indexed_event_id(position), problem)
    return None


def _named(stream: str) -> str:
    kind = "subscription" if stream.startswith("s:") else "customer"
    return f"{kind} {stream[2:]!r}"


def _void_problem(position: int, target: str, filed: tuple[str | None, str | None],
                  of_target: list[Any], voided: dict[str, str]) -> str | None:
    at, type_, customer, subscription = of_target
    if at is None:
        return f"voids: the ledger holds no event {target!r}"
    if at > position:
        return f"voids: {target!r} is recorded after it (at position {at})"
    if type_ == VOID:
        return f"voids: {target!r} is itself a void"
    if target in voided:
        return f"voids: {target!r} is already voided by {voided[target]!r}"
    if filed != (customer, subscription):
        return (f"its index row files it under customer {filed[0]!r}, subscription "
                f"{filed[1]!r}; its target's are {customer!r}, {subscription!r}")
    return None
