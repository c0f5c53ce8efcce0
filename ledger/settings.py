"""Which database a ledger lives in: a `--db` URL turned into eventsourcing's settings.

eventsourcing is configured by environment variables naming a persistence module and the
classes it should use (as topics); the ledger picks its own recorders and transcoder this
way, so the rest of the code only ever passes a URL around.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit


class UnsupportedDatabase(ValueError):
    """A URL that names no database the ledger can live in (a usage error, not a fault)."""


def env_for_url(url: str) -> dict[str, str]:
    """eventsourcing settings for a `--db` URL (`sqlite:///path` or `postgresql://...`)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        path = path[1:] if path.startswith("//") else path.removeprefix("/") or ""
        if parts.netloc or not path:
            raise UnsupportedDatabase(f"expected sqlite:///relative/path or sqlite:////abs: {url}")
        return {
            "PERSISTENCE_MODULE": "ledger.sqlite:SQLiteLedgerFactory",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "60",
            "APPLICATION_RECORDER_TOPIC": "ledger.sqlite:SQLiteLedgerRecorder",
            "TRANSCODER_TOPIC": "ledger.transcoder:OrjsonTranscoder",
        }
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname or not parts.path.strip("/"):
            raise UnsupportedDatabase(f"expected postgresql://user:pass@host:port/db: {url}")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or os.environ.get("USER", "postgres")),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_POOL_SIZE": "2",
            # eventsourcing's default (5 s) would end a rebuild's write transaction while
            # its reader waits for the server to sort the whole ledger.
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "120",
            "APPLICATION_RECORDER_TOPIC": "ledger.postgres:PostgresLedgerRecorder",
            "TRANSCODER_TOPIC": "ledger.transcoder:OrjsonTranscoder",
        }
    raise UnsupportedDatabase(f"unsupported database URL (sqlite:/// or postgresql://): {url}")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url
