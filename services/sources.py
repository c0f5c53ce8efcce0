"""The billing sources as the edges see them: which are served at /v1/webhooks/<name> and
how (their body limit, their signing secret's environment variable), which have an
`import` command and its help, `import csv`'s layouts, and the words of a delivery's
answer. The HTTP API and the
command line ask here, never ledger.sources: a source registered there appears in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.rules import CONFLICT as _CONFLICT
from ledger.rules import Outcome
from ledger.sources import SOURCES, RefusedDelivery, SignatureError
from ledger.sources.periods import PRESETS
from ledger.sources.periods import layout as layout_for

__all__ = ["CONFLICT", "PRESETS", "Endpoint", "Importer", "Outcome", "RefusedDelivery",
           "SignatureError", "endpoint", "importers", "layout_for", "webhooks"]

# A conflict's reason, as an answer says it of the whole request.
CONFLICT = _CONFLICT.removeprefix("conflict: ")


@dataclass(frozen=True)
class Endpoint:
    """A source as the HTTP API serves it."""

    name: str
    title: str  # its name for people, in messages
    max_body: int  # the largest body read (413 beyond)
    secret_env: str | None  # where `serve` finds its signing secret; None: not signed


@dataclass(frozen=True)
class Importer:
    """A source's `revledger import` subcommand."""

    command: str
    source: str
    help: str


def endpoint(name: str) -> Endpoint:
    source = SOURCES[name]
    return Endpoint(name, source.title, source.max_body, source.secret_env)


def webhooks() -> list[Endpoint]:
    """The sources that sign their deliveries: each served at /v1/webhooks/<name>."""
    return [endpoint(name) for name, source in SOURCES.items() if source.secret_env]


def importers() -> list[Importer]:
    """The sources whose files `revledger import <command>` reads, as the registry lists
    them (CSV periods have a command of their own, with the options of a layout)."""
    return [Importer(source.imports, name, source.import_help)
            for name, source in SOURCES.items() if source.imports]
