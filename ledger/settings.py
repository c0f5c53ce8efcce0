"""Which database a ledger lives in: a `--db` URL turned into eventsourcing's settings.

eventsourcing is configured by environment variables naming a persistence module and the
classes it should use (as topics); the ledger picks its own recorders and transcoder this
way, so the rest of the code only ever passes a URL around.
"""

from __future__ import annotations

import os
import re
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
    """eventsourcing settings for a `--db` URL (`sqlite:///path` or `postgresql://...`).
    PostgreSQL's user and password come from the URL, else from PGUSER / PGPASSWORD (and
    `?user=` / `?password=` query parameters, as libpq reads them)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UnsupportedDatabase(f"not a database URL ({exc}): {redact(url)}") from None
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        path = path[1:] if path.startswith("//") else path.removeprefix("/") or ""
        if parts.netloc or not path:
            raise UnsupportedDatabase(
                f"expected sqlite:///relative/path or sqlite:////abs: {redact(url)}")
        return {
            "PERSISTENCE_MODULE": "ledger.sqlite:SQLiteLedgerFactory",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "60",
            "APPLICATION_RECORDER_TOPIC": "ledger.sqlite:SQLiteLedgerRecorder",
            "COORDINATION_TOPIC": "ledger.sqlite:SQLiteCoordination",
            "TRANSCODER_TOPIC": "ledger.transcoder:OrjsonTranscoder",
        }
    if parts.scheme in ("postgresql", "postgres"):
        query = dict(parse_qsl(parts.query))
        if not parts.hostname or not parts.path.strip("/"):
            raise UnsupportedDatabase(
                f"expected postgresql://user:pass@host:port/db: {redact(url)}")
        return {
            "PERSISTENCE_MODULE": "ledger.postgres:PostgresLedgerFactory",
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
            "APPLICATION_RECORDER_TOPIC": "ledger.postgres:PostgresLedgerRecorder",
            "COORDINATION_TOPIC": "ledger.postgres:PostgresCoordination",
            "TRANSCODER_TOPIC": "ledger.transcoder:OrjsonTranscoder",
        }
    raise UnsupportedDatabase(
        f"unsupported database URL (sqlite:/// or postgresql://): {redact(url)}")


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
