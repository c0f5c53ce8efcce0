"""What a billing source is to the write side: one small interface, so that recording a
file and recording a webhook delivery are each written once, whatever system sent them.

A source only translates: its own format in, canonical JSON Lines (docs/events.md) out.
From there every source shares one path (validation, idempotency, the hash chain), so a
Stripe event and a canonical one are recorded, deduplicated and audited alike. A source
never writes: the services record what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from ledger.feed import MAX_LINE, Rejected

Line = tuple[int, bytes]  # a canonical line, numbered from 1 in its file or export


@dataclass(frozen=True)
class Ignored:
    """A record of a type that carries no revenue (e.g. a Stripe invoice event): neither
    recorded nor rejected, only counted, so a full export can be imported as it is."""

    line: int


@dataclass(frozen=True)
class Held:
    """A record the source could read but not map yet (an unknown shape, an object it
    refers to that is not known yet): kept verbatim in the quarantine with its reason, to
    be mapped again (`revledger quarantine retry`), never lost and never refused."""

    line: int
    event_id: str
    reason: str
    raw: bytes
    evidence: dict[str, Any] | None = None  # how it was delivered (signature), if at all


@dataclass(frozen=True)
class Learned:
    """Objects of the billing system a record carried that later records refer to by id
    (Stripe's discounts and coupons): the source's catalogue, kept beside the ledger."""

    line: int
    objects: list[tuple[str, dict[str, Any]]]


Lookup = Callable[[str], Mapping[str, Any] | None]  # a learned object by its id


@dataclass(frozen=True)
class Delivery:
    """What one webhook delivery comes to: canonical lines to record, or `ignored` when
    the source sent something that carries no revenue (acknowledged so it is not resent);
    objects it `learned`, and what it `held` for the quarantine."""

    lines: list[bytes]
    ignored: bool = False
    learned: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


class RefusedDelivery(ValueError):
    """A delivery refused whole, before anything of it is recorded: unreadable, or not what
    the source sends. Its text is one line, for the sender."""


class SignatureError(RefusedDelivery):
    """A delivery's signature is missing, malformed, wrong or stale: nothing says it comes
    from the source, so it is not read at all."""


class Source(Protocol):
    """A billing system whose events the ledger records: `name`, `parse` and `delivery`
    are what every source has; the rest are optional capabilities, each with its default
    in `SourceBase` (a source subclasses it and sets only what it has). The services,
    the HTTP API and the command line read them alike for every registered source, so a
    new source needs no code outside its module and its line in the registry."""

    name: str  # its key in the registry (ledger.sources.SOURCES)
    # The prefix of every event id it writes ("stripe:"), None for the canonical source;
    # no other channel may write an id with that prefix.
    namespace: str | None
    # The longest canonical line it may send, in bytes; None when it bounds what it
    # receives itself (a source that translates, whose stored line is larger).
    max_line: int | None
    # Whether its lines are revledger's own translation (written by orjson from a
    # document the source has read and checked) rather than the sender's bytes.
    translates: bool
    # The largest request body its HTTP endpoint reads (413 beyond).
    max_body: int
    # Its name for people ("Stripe"), in the messages that speak of its webhooks.
    title: str
    # Where it signs its deliveries: the environment variable holding the endpoint's
    # signing secret (`serve` reads it; the source is then built with the secret and
    # served at /v1/webhooks/<name>). None: it does not sign (and takes no secret).
    secret_env: str | None
    # Its settings: each name with its allowed values, the first the default. Recorded
    # in the ledger on first use (a figure means what they said), given to `configured`.
    settings: Mapping[str, tuple[str, ...]]
    # Whether it learns objects of the billing system that later records refer to by
    # id (`Learned`, `Delivery.learned`), kept beside the ledger and given back as `lookup`.
    learns: bool
    # Whether what it cannot map yet, and what the ledger refuses of it, is held in the
    # quarantine (`Held`) rather than rejected: then never refused, mapped again by `retry`.
    quarantines: bool
    # The `revledger import` subcommand that reads its files, and that command's help;
    # None when it has none (or a command of its own, with options of its own).
    imports: str | None
    import_help: str

    def parse(
        self, data: Iterable[bytes], lookup: Lookup | None = None
    ) -> Iterator[Line | Rejected | Ignored | Held | Learned]:
        """A file or export (its lines as read, line endings included) as numbered
        canonical lines, in order; a record that cannot be read is `Rejected` (the rest go
        on), one that carries no revenue is `Ignored`, one that cannot be mapped yet is
        `Held`. `lookup` finds objects learned before (`Learned`). `RefusedDelivery` when
        the file as a whole is not this source's (nothing of it is recorded)."""
        ...

    def delivery(
        self, body: bytes, headers: Mapping[str, str], lookup: Lookup | None = None
    ) -> Delivery:
        """One webhook or API request's body as canonical lines. Where the source signs
        its deliveries, the signature is checked first (`SignatureError`) and kept with
        each event as its delivery evidence (`_delivery`). `RefusedDelivery` when the body
        cannot be read at all; a bad event among readable ones is left to ingest to
        reject, line by line."""
        ...

    def configured(self, settings: Mapping[str, str]) -> Source:
        """The source under the settings this ledger records (every one of `settings`)."""
        ...

    def retry(self, raw: bytes, evidence: dict[str, Any] | None,
              lookup: Lookup) -> Delivery:
        """A held record (verbatim, with its delivery evidence) mapped again with what is
        known now: its lines (evidence kept with each), what it learned, or `held` again
        with the reason; `ignored` when it carries no revenue after all."""
        ...

    def original(self, line: dict[str, Any]) -> Any:
        """The source's own record a canonical line of it was translated from (what the
        quarantine keeps when the ledger refuses the line and no delivery is kept)."""
        ...


class SourceBase:
    """The optional capabilities' defaults: a source that neither signs, nor learns,
    nor holds anything, with no settings and no import command of its own."""

    namespace: str | None = None
    max_line: int | None = MAX_LINE
    translates: bool = False
    max_body: int = 8 << 20  # a request of a handful of events, not a backfill
    title: str = ""
    secret_env: str | None = None
    settings: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    learns: bool = False
    quarantines: bool = False
    imports: str | None = None
    import_help: str = ""

    def configured(self, settings: Mapping[str, str]) -> Source:
        return self  # type: ignore[return-value]

    def retry(self, raw: bytes, evidence: dict[str, Any] | None,
              lookup: Lookup) -> Delivery:
        return Delivery([], held=[Held(1, "-", "no mapping for this source", raw, evidence)])

    def original(self, line: dict[str, Any]) -> Any:
        return line


def defaults(settings: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """A source's settings until a ledger records others: each one's first value."""
    return {name: values[0] for name, values in settings.items()}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The first value of the HTTP header `name` (lower case): header names are
    case-insensitive, a plain dict of them is not."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
