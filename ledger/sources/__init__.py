"""Billing sources: the write side's input adapters, one module per source.

Each turns one billing system's format into canonical JSON Lines behind one interface
(`Source`, in ledger.sources.base: what every source does, and the optional capabilities
whose defaults `SourceBase` gives), and is registered here by its name: the services, the
HTTP API and the command line look a source up by name and read its capabilities, so
adding one is a new module and a line in `SOURCES`.
"""

from __future__ import annotations

from typing import Any

from ledger.feed import Channel
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
    defaults,
)
from ledger.sources.canonical import CanonicalSource
from ledger.sources.ecb import EcbSource
from ledger.sources.periods import PeriodsSource
from ledger.sources.stripe_source import StripeSource

__all__ = ["SOURCES", "Delivery", "Held", "Ignored", "Learned", "Line", "Lookup",
           "RefusedDelivery", "SignatureError", "Source", "SourceBase", "channel",
           "defaults", "source_named"]

# name -> the source; one that signs its deliveries is built with the endpoint's secret.
SOURCES: dict[str, type[Source]] = {
    make.name: make for make in (CanonicalSource, StripeSource, PeriodsSource, EcbSource)
}


def source_named(name: str, secret: str | None = None, **options: Any) -> Source:
    """The source called `name`, given `secret` only if it signs its deliveries (a secret
    for one that does not is a configuration mistake, and a TypeError), and the `options`
    it is built with (a CSV file's layout)."""
    try:
        make = SOURCES[name]
    except KeyError:
        raise ValueError(f"no billing source {name!r} (known: {', '.join(SOURCES)})") from None
    return make(**options) if secret is None else make(secret, **options)


def channel(name: str) -> Channel:
    """The channel of source `name`: its limits, its id namespace, and the namespaces of
    every other registered source, which its lines may not write into (the rule in
    docs/events.md: a canonical id may not start with `stripe:`)."""
    source = SOURCES[name]
    return Channel(name, source.max_line, source.namespace, tuple(
        other.namespace for key, other in SOURCES.items()
        if key != name and other.namespace is not None
    ), source.translates)
