"""Billing sources: the write side's input adapters, one module per source.

Each turns one billing system's format into canonical JSON Lines behind one interface
(`Source`, in ledger.sources.base), and is registered here by its name: the services look
a source up by name, so adding one is a new module and a line in `SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.feed import MAX_LINE, Channel
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
)
from ledger.sources.canonical import CanonicalSource
from ledger.sources.ecb import EcbSource
from ledger.sources.periods import PeriodsSource
from ledger.sources.stripe_source import StripeSource

__all__ = ["SOURCES", "Delivery", "Held", "Ignored", "Learned", "Line", "Lookup",
           "RefusedDelivery", "SignatureError", "Source", "channel", "source_named"]

# name -> the source; one that signs its deliveries is built with the endpoint's secret.
SOURCES: dict[str, Callable[..., Source]] = {
    make.name: make for make in (CanonicalSource, StripeSource, PeriodsSource, EcbSource)
}


def source_named(name: str, secret: str | None = None) -> Source:
    """The source called `name`, given `secret` only if it signs its deliveries (a secret
    for one that does not is a configuration mistake, and a TypeError)."""
    try:
        make = SOURCES[name]
    except KeyError:
        raise ValueError(f"no billing source {name!r} (known: {', '.join(SOURCES)})") from None
    return make() if secret is None else make(secret)


def channel(name: str) -> Channel:
    """The channel of source `name`: its limits, its id namespace, and the namespaces of
    every other registered source, which its lines may not write into (the rule in
    docs/events.md: a canonical id may not start with `stripe:`)."""
    def namespace(source: object) -> str | None:
        return getattr(source, "namespace", None)

    source = SOURCES[name]  # a source that says nothing of these is held as canonical lines
    return Channel(name, getattr(source, "max_line", MAX_LINE), namespace(source), tuple(
        prefix for key, other in SOURCES.items()
        if key != name and (prefix := namespace(other)) is not None
    ), getattr(source, "translates", False))
