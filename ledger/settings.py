"""Which database a ledger lives in: a `--db` URL turned into eventsourcing's settings.

eventsourcing is configured by environment variables naming a persistence module and the
classes it should use (as topics). `STORES` is the one table of the stores: a URL's scheme
gives the store's kind (`store_kind`: what the application, the projections' choice of
view and a message about the store go by) and the database module holding its factory,
recorder and coordination. Nothing else is to read a URL's text to tell one store from
another: the rest of the code passes the URL along, asks `store_kind`, or asks the open
ledger (`LedgerApplication.kind`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

DEFAULT_DB = "sqlite:///revledger.db"  # in the working directory
DEMO_DB = "sqlite:///revledger-demo.db"  # where `revledger demo` puts the sample ledger


# scheme://user:password@ — the password runs to the last '@' before the host; and a
# password given as a query parameter (libpq's `?password=`)
_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^\s/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


class UnsupportedDatabase(ValueError):
    """A URL that names no database the ledger can live in (a usage error, not a fault)."""


def env_for_url(url: str) -> dict[str, str]:
    """eventsourcing settings for a `--db` URL (`sqlite:///path` or `postgresql://...`):
    its store's module and classes, and the database's own settings from the URL."""
    parts, store = _parsed(url)
    return {
        **store.settings(parts, url),
        "PERSISTENCE_MODULE": f"{store.module}:{store.prefix}LedgerFactory",
        "APPLICATION_RECORDER_TOPIC": f"{store.module}:{store.prefix}LedgerRecorder",
        "COORDINATION_TOPIC": f"{store.module}:{store.prefix}Coordination",
        "TRANSCODER_TOPIC": "ledger.transcoder:OrjsonTranscoder",
    }


def store_kind(url: str) -> str:
    """The kind of store a `--db` URL names (`"sqlite"`, `"postgresql"`), from the table
    that picks its persistence module (`STORES`); `UnsupportedDatabase` if none."""
    return _parsed(url)[1].kind


def _parsed(url: str) -> tuple[SplitResult, Store]:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UnsupportedDatabase(f"not a database URL ({exc}): {redact(url)}") from None
    if (store := STORES.get(parts.scheme)) is None:
        raise UnsupportedDatabase(
            f"unsupported database URL (sqlite:/// or postgresql://): {redact(url)}")
    return parts, store


def _sqlite(parts: SplitResult, url: str) -> dict[str, str]:
    path = unquote(parts.path)
    path = path[1:] if path.startswith("//") else path.removeprefix("/") or ""
    if parts.netloc or not path:
        raise UnsupportedDatabase(
            f"expected sqlite:///relative/path or sqlite:////abs: {redact(url)}")
    return {"SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "60"}


def _postgresql(parts: SplitResult, url: str) -> dict[str, str]:
    """PostgreSQL's user and password come from the URL, else from PGUSER / PGPASSWORD
    (and `?user=` / `?password=` query parameters, as libpq reads them)."""
    query = dict(parse_qsl(parts.query))
    if not parts.hostname or not parts.path.strip("/"):
        raise UnsupportedDatabase(
            f"expected postgresql://user:pass@host:port/db: {redact(url)}")
    return {
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(_port(parts, url)),
        "POSTGRES_USER": unquote(parts.username or query.get("user")
                                 or os.environ.get("PGUSER")
                                 or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": unquote(parts.password or query.get("password")
                                     or os.environ.get("PGPASSWORD", "")),
        # How long to wait for a connection (the pool's wait; each connection's own
        # bound is `ledger.liveness.Limits.connect_timeout`).
        "POSTGRES_CONNECT_TIMEOUT": os.environ.get("REVLEDGER_PG_CONNECT_TIMEOUT") or "5",
        "POSTGRES_POOL_SIZE": "2",
        # eventsourcing's default (5 s) would end a rebuild's write transaction while
        # its reader waits for the server to sort the whole ledger.
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "120",
    }


@dataclass(frozen=True)
class Store:
    """A kind of database a ledger can live in: its module (`<module>:<prefix>LedgerFactory`,
    `...LedgerRecorder`, `...Coordination`) and its settings read from a URL."""

    kind: str  # `LedgerApplication.kind`; the projections pick their view by it
    module: str
    prefix: str
    settings: Callable[[SplitResult, str], dict[str, str]]


_SQLITE = Store("sqlite", "ledger.sqlite", "SQLite", _sqlite)
_POSTGRESQL = Store("postgresql", "ledger.postgres", "Postgres", _postgresql)
STORES = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL, "postgres": _POSTGRESQL}  # by scheme


def _port(parts: SplitResult, url: str) -> int:
    try:
        return parts.port or 5432
    except ValueError:
        raise UnsupportedDatabase(f"the port is not a number 0-65535: {redact(url)}") from None


def redact(text: str) -> str:
    """`text` with the password of every URL in it masked (`user:***@host`), for
    messages: the one helper every message that may hold a database URL goes through.
    Textual, so a URL that does not parse (a bad port, say) is masked too."""
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1:***@", text))
