"""The canonical event feed (contract v1.1): one pydantic-validated `TypedDict` per event type.

Validation is strict on purpose: a billing feed that sends `99.9` as a JSON number or a
naive timestamp has a bug, and guessing what it meant would make a figure unexplainable
later. Each type keeps unknown extra fields, so the validated record is the whole record.

TypedDicts rather than models: every feed line is validated, and ingest reads a few fields
of the result; pydantic builds a plain dict 40% faster than a model instance. Defaults
(`interval_count` and `quantity` of 1) are the fold's to apply, so none is filled in here.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from ledger.currencies import is_active
from ledger.instants import utc_instant
from ledger.jsontext import UnreadableJSON, read_json
from ledger.kinds import EVENT_TYPES

# contract v1.1: >= 0 and < 10^12, at most 12 decimal places, ASCII digits only
_AMOUNT = re.compile(r"0*(\d{1,12})(\.\d{1,12})?", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


def _offset_required(value: str) -> str:
    return utc_instant(value)  # its ValueError says what was wrong, once


def _decimal_string(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError("must be a decimal string of ASCII digits, >= 0 and < 10^12, with at "
                         "most 12 decimal places (e.g. \"99.00\")")
    return value


def _iso_4217(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError("must be an ISO 4217 code of 3 upper-case letters")
    if not is_active(value):
        raise ValueError(f"{value} is not an active ISO 4217 currency code")
    return value


def _positive_rate(value: str) -> str:
    """contract v2: a rate is a decimal string > 0 with at most 12 decimal places."""
    _decimal_string(value)
    if not value.strip("0."):
        raise ValueError("must be greater than 0")
    return value


# Ids are stored as text columns (the index, the view), and PostgreSQL's text cannot hold
# a NUL character: refused on both stores alike. The pattern runs in pydantic's core.
Id = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
IntervalCount = Annotated[StrictInt, Field(ge=1, le=1000)]
Quantity = Annotated[StrictInt, Field(ge=0, le=10**9)]
Interval = Literal["day", "week", "month", "year"]
Instant = Annotated[StrictStr, AfterValidator(_offset_required)]  # normalised to UTC text
Amount = Annotated[StrictStr, AfterValidator(_decimal_string)]
Currency = Annotated[StrictStr, AfterValidator(_iso_4217)]
Rate = Annotated[StrictStr, AfterValidator(_positive_rate)]


class _Record(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    event_id: Id


class _Event(_Record):
    effective_at: Instant


class CustomerCreated(_Event):
    type: Literal["customer.created"]
    customer_id: Id
    attributes: NotRequired[dict[StrictStr, StrictStr]]


class CustomerUpdated(_Event):
    type: Literal["customer.updated"]
    customer_id: Id
    attributes: dict[StrictStr, StrictStr]


class _SubscriptionEvent(_Event):
    customer_id: Id
    subscription_id: Id


class SubscriptionStarted(_SubscriptionEvent):
    type: Literal["subscription.started"]
    plan: StrictStr
    amount: Amount
    currency: Currency
    interval: Interval
    interval_count: NotRequired[IntervalCount]  # 1 if left out
    quantity: NotRequired[Quantity]  # 1 if left out


class SubscriptionReactivated(SubscriptionStarted):
    type: Literal["subscription.reactivated"]  # type: ignore[misc]


class SubscriptionSnapshot(SubscriptionStarted):
    """v1.1: the subscription's whole state as its billing system sees it (a webhook that
    carries the full object); valid whether or not the ledger has seen it before."""

    type: Literal["subscription.snapshot"]  # type: ignore[misc]
    status: Literal["active", "inactive"]


TERM_FIELDS = ("plan", "amount", "currency", "interval", "interval_count", "quantity")


class SubscriptionChanged(_SubscriptionEvent):
    """Names any subset of the terms, keeping the others by leaving them out: a term sent
    as null is refused (by pydantic's core, as any non-string: `_describe` words it)."""

    type: Literal["subscription.changed"]
    plan: NotRequired[StrictStr]
    amount: NotRequired[Amount]
    currency: NotRequired[Currency]
    interval: NotRequired[Interval]
    interval_count: NotRequired[IntervalCount]
    quantity: NotRequired[Quantity]


def _names_a_term(change: dict[str, Any]) -> dict[str, Any]:
    if not change.keys() & TERM_FIELDS:
        raise ValueError("names none of plan, amount, currency, interval, ...")
    return change


class SubscriptionCancelled(_SubscriptionEvent):
    type: Literal["subscription.cancelled"]


class EventVoided(_Record):
    type: Literal["event.voided"]
    effective_at: NotRequired[Instant | None]
    voids: Id
    reason: NotRequired[StrictStr | None]


class FxRate(_Event):
    """contract v2: from `effective_at` on, 1 `base` = `rate` `quote`. About no customer."""

    type: Literal["fx.rate"]
    base: Currency
    quote: Currency
    rate: Rate


def _two_currencies(rate: dict[str, Any]) -> dict[str, Any]:
    if rate["base"] == rate["quote"]:
        raise ValueError("quote: must differ from base")
    return rate


CanonicalEvent = Annotated[
    CustomerCreated
    | CustomerUpdated
    | SubscriptionStarted
    | Annotated[SubscriptionChanged, AfterValidator(_names_a_term)]
    | SubscriptionCancelled
    | SubscriptionReactivated
    | SubscriptionSnapshot
    | EventVoided
    | Annotated[FxRate, AfterValidator(_two_currencies)],
    Field(discriminator="type"),
]
_adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(CanonicalEvent)


class InvalidEvent(ValueError):
    """A record that breaks the contract; `event_id` is whatever could be read of it."""

    def __init__(self, event_id: str, reason: str):
        super().__init__(reason)
        self.event_id = event_id
        self.reason = reason


# Reserved extra field: how this copy of the event was delivered (e.g. the raw webhook body
# and its signature). Kept for the audit trail, but not part of the event's identity: a
# redelivery differs there and is still the same event.
DELIVERY = "_delivery"


def content_hash(payload: dict[str, Any]) -> str:
    """Identity of a record's content: key order and white space do not matter, nor the
    delivery evidence."""
    if DELIVERY in payload:
        payload = {k: v for k, v in payload.items() if k != DELIVERY}
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _number_for_string(where: str, number: float) -> str:
    """The message for a JSON number where a string is due: how to write it instead."""
    if where.endswith("amount"):
        text = format(Decimal(repr(number)), "f")
        whole, _, places = text.partition(".")
        written = f"{whole}.{places.rstrip('0').ljust(2, '0')}"
        return f"{number!r} is a JSON number; write it as a decimal string: \"{written}\""
    if where.endswith("effective_at"):
        return (f"{number!r} is a JSON number; write an RFC 3339 timestamp with offset: "
                "\"2024-01-15T08:00:00Z\"")
    return f"{number!r} is a JSON number; write it as a string: \"{number!r}\""


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(EVENT_TYPES))
    message = first["msg"].removeprefix("Value error, ")
    if first["input"] is None and len(first["loc"]) == 2 and first["loc"][1] in TERM_FIELDS:
        message = "must not be null (leave the field out to keep the term)"
    if first["type"] == "string_pattern_mismatch":  # the one pattern: an Id's
        message = "must not contain a NUL character"
    if first["type"] == "string_type" and isinstance(first["input"], int | float) \
            and not isinstance(first["input"], bool):
        message = _number_for_string(where, first["input"])
    if first["type"] == "union_tag_invalid":
        return f"type: unknown event type {first['input'].get('type')!r}"
    if first["type"] == "union_tag_not_found":
        return "type: missing"
    return f"{where}: {message}" if where else message


def parse_event(payload: Any) -> dict[str, Any]:
    """The record validated against the contract (instants normalised to UTC text, extra
    fields kept), or `InvalidEvent`."""
    if not isinstance(payload, dict):
        raise InvalidEvent("-", "not a JSON object")
    try:
        return _adapter.validate_python(payload)
    except ValidationError as error:
        raise InvalidEvent(_readable_id(payload), _describe(error)) from None


def decode_line(line: bytes | str, *, translated: bool = False) -> dict[str, Any]:
    """JSON-decode one feed line, refusing what JSON Lines does not allow and what could
    not be stored as given (`ledger.jsontext`: depth, duplicate keys, inexact numbers).
    A `translated` line was written by revledger from a checked document: its keys are
    not checked again."""
    try:
        value = read_json(line, unique_keys=not translated)
    except UnreadableJSON as exc:
        raise InvalidEvent(_readable_id(exc.value), str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidEvent("-", "not a JSON object")
    return value


def _readable_id(value: Any) -> str:
    """The record's event_id as far as it can be read, for its error line ("-" if none)."""
    raw_id = value.get("event_id") if isinstance(value, dict) else None
    return raw_id[:200] if isinstance(raw_id, str) and raw_id else "-"
