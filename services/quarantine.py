"""The quarantine as a user sees it: what is held and why (`revledger quarantine list`), and
mapping it again (`revledger quarantine retry`) after an upgrade, a backfill of the objects
it needed, or a ledger that takes its currency; and the source settings a ledger records."""

from __future__ import annotations

from typing import Any

from ledger.held import SourceStore
from ledger.ingest import Ingestor
from ledger.sources import SOURCES, defaults
from services.held import retry_held, settled
from services.ledger import open_ledger
from services.projections import current_index


def held_records(url: str, source: str | None = None) -> list[dict[str, Any]]:
    """Every record still held, oldest first, verbatim (`raw`) with its reason."""
    with open_ledger(url) as app:
        rows = SourceStore(app).held(source)
    return [{"id": r.id, "source": r.source, "event_id": r.event_id, "reason": r.reason,
             "held_at": r.held_at, "raw": r.raw.decode("utf-8", "replace")} for r in rows]


def retry(url: str, source: str | None = None) -> dict[str, Any]:
    """Map every held record again; record those that map now. What stays held says why."""
    with open_ledger(url) as app:
        retried = retry_held(app, Ingestor(app), source)
        if retried.recorded:
            current_index(app)
    return {
        "recorded": [{"id": r.id, "event_id": r.event_id, "outcome": outcome}
                     for r, outcome in retried.recorded],
        "held": [{"id": r.id, "event_id": r.event_id, "reason": why}
                 for r, why in retried.still],
    }


def source_settings(url: str, source: str, values: dict[str, str] | None = None) -> dict:
    """The settings this ledger records for `source` (its defaults on first use);
    `values` chosen before the first event of the source is recorded, never after."""
    choices = SOURCES[source].settings if source in SOURCES else {}
    if not choices:
        raise ValueError(f"{source} has no settings")
    with open_ledger(url) as app:
        store = SourceStore(app)
        if values:
            for name, value in values.items():  # the CLI's choices, checked for any caller
                if name not in choices:
                    raise ValueError(f"{name}: not a setting of {source} (one of "
                                     f"{', '.join(choices)})")
                if value not in choices[name]:
                    raise ValueError(f"{name}: one of {', '.join(choices[name])}")
            store.settle(source, values)
            return settled(store, source)
        return defaults(choices) | store.settings(source)
