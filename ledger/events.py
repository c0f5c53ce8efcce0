"""The canonical event feed (contract v1): one pydantic model per event type.

Validation is strict on purpose: a billing feed that sends `99.9` as a JSON number or a
naive timestamp has a bug, and guessing what it meant would make a figure unexplainable
later. Each model keeps unknown extra fields, so the stored payload is the whole record.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger.instants import utc_instant
from ledger.kinds import EVENT_TYPES

_AMOUNT = re.compile(r"^\d{1,15}(\.\d{1,2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

Id = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Count = Annotated[StrictInt, Field(ge=1)]
Interval = Literal["day", "week", "month", "year"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Id
    type: str
    effective_at: StrictStr

    @field_validator("effective_at")
    @classmethod
    def _offset_required(cls, value: str) -> str:
        try:
            return utc_instant(value)
        except ValueError as exc:  # out-of-range dates land here too
            raise ValueError(f"must be an RFC 3339 timestamp with offset ({exc})") from None


TERM_FIELDS = ("plan", "amount", "currency", "interval", "interval_count", "quantity")


class SubscriptionTerms(BaseModel):
    """The priced terms; every field optional so `changed` can name any subset.

    Optional but not nullable: `changed` keeps a term by leaving it out, and a null is
    refused (a default is not validated, a sent value is). The check stays in pydantic's
    core: a Python validator per term costs a fifth of checking a feed."""

    plan: StrictStr = None  # type: ignore[assignment]
    amount: StrictStr = None  # type: ignore[assignment]
    currency: StrictStr = None  # type: ignore[assignment]
    interval: Interval = None  # type: ignore[assignment]
    interval_count: Count = None  # type: ignore[assignment]
    quantity: Count = None  # type: ignore[assignment]

    @field_validator("amount")
    @classmethod
    def _decimal_string(cls, value: str) -> str:
        if not _AMOUNT.match(value):
            raise ValueError("must be a decimal string >= 0 with at most 2 decimal places")
        return value

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be an ISO 4217 code of 3 upper-case letters")
        return value


class CustomerCreated(_Event):
    type: Literal["customer.created"]
    customer_id: Id
    attributes: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class CustomerUpdated(_Event):
    type: Literal["customer.updated"]
    customer_id: Id
    attributes: dict[StrictStr, StrictStr]


class SubscriptionStarted(_Event, SubscriptionTerms):
    type: Literal["subscription.started"]
    customer_id: Id
    subscription_id: Id
    plan: StrictStr
    amount: StrictStr
    currency: StrictStr
    interval: Interval
    interval_count: Count = 1
    quantity: Count = 1


class SubscriptionReactivated(SubscriptionStarted):
    type: Literal["subscription.reactivated"]  # type: ignore[assignment]


class SubscriptionChanged(_Event, SubscriptionTerms):
    type: Literal["subscription.changed"]
    customer_id: Id
    subscription_id: Id

    @model_validator(mode="after")
    def _names_a_term(self) -> SubscriptionChanged:
        if not self.model_fields_set & set(SubscriptionTerms.model_fields):
            raise ValueError("names none of plan, amount, currency, interval, ...")
        return self


class SubscriptionCancelled(_Event):
    type: Literal["subscription.cancelled"]
    customer_id: Id
    subscription_id: Id


class EventVoided(_Event):
    type: Literal["event.voided"]
    effective_at: StrictStr | None = None  # type: ignore[assignment]
    voids: Id
    reason: StrictStr | None = None

    @field_validator("effective_at")
    @classmethod
    def _optional_offset(cls, value: str | None) -> str | None:
        return None if value is None else _Event._offset_required(value)


CanonicalEvent = Annotated[
    CustomerCreated
    | CustomerUpdated
    | SubscriptionStarted
    | SubscriptionChanged
    | SubscriptionCancelled
    | SubscriptionReactivated
    | EventVoided,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(CanonicalEvent)


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


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(EVENT_TYPES))
    message = first["msg"].removeprefix("Value error, ")
    if first["input"] is None and len(first["loc"]) == 2 and first["loc"][1] in TERM_FIELDS:
        message = "must not be null (leave the field out to keep the term)"
    if first["type"] == "union_tag_invalid":
        return f"type: unknown event type {first['input'].get('type')!r}"
    if first["type"] == "union_tag_not_found":
        return "type: missing"
    return f"{where}: {message}" if where else message


def parse_event(payload: Any) -> Any:
    """Validate one decoded JSON value against the contract, or raise `InvalidEvent`."""
    if not isinstance(payload, dict):
        raise InvalidEvent("-", "not a JSON object")
    raw_id = payload.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and raw_id else "-"
    try:
        return _adapter.validate_python(payload)
    except ValidationError as error:
        raise InvalidEvent(event_id[:200], _describe(error)) from None


def decode_line(line: bytes | str) -> dict[str, Any]:
    """JSON-decode one feed line, refusing what JSON Lines does not allow."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("-", f"invalid JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(value, dict):
        raise InvalidEvent("-", "not a JSON object")
    if (where := _inexact_number(value)) is not None:
        raw_id = value.get("event_id")
        raise InvalidEvent(raw_id[:200] if isinstance(raw_id, str) and raw_id else "-",
                           f"{where}: a number this large cannot be kept exactly; send it "
                           "as a string")
    return value


_EXACT = 2**53  # beyond this a JSON number decodes to an inexact float


def _inexact_number(value: dict[str, Any] | list[Any], path: str = "") -> str | None:
    """The path of the first number that could not be stored exactly as given (orjson
    turns integers beyond 64 bits into floats). Only containers and floats are looked
    into: every line goes through here."""
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        kind = type(item)
        if kind is float:
            if abs(item) >= _EXACT:
                return f"{path}{key}"
        elif (kind is dict or kind is list) and (
            found := _inexact_number(item, f"{path}{key}.")
        ) is not None:
            return found
    return None
