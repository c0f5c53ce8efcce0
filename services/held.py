"""A source's catalogue, quarantine and settings as the ingest services use them: open the
source with the settings this ledger records, keep what it learned and what it held, turn
the ledger's refusals of its events into held records, and map held records again.

Nothing a billing system delivers is lost: what cannot be recorded now is kept verbatim
with its reason, and `retry_held` records it once it can be (after an upgrade, a backfill
of discounts, or a ledger that takes its currency).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from ledger.application import LedgerApplication
from ledger.checks import check_batch
from ledger.events import DELIVERY
from ledger.feed import Rejected
from ledger.held import HeldRecord, SourceStore
from ledger.ingest import Ingestor
from ledger.rules import Outcome
from ledger.sources import SOURCES, Held, Lookup, Source, channel, defaults, source_named


def settled(store: SourceStore, name: str) -> dict[str, str]:
    """The source's settings, its defaults recorded on first use: every figure from its
    events was computed under them, so they are part of what a figure means."""
    choices = SOURCES[name].settings
    if not choices:
        return {}
    current = store.settings(name)
    missing = {k: v for k, v in defaults(choices).items() if k not in current}
    return store.settle(name, missing) if missing else current


def open_source(store: SourceStore, name: str, secret: str | None = None) -> Source:
    """The source `name` under this ledger's settings."""
    source = source_named(name, secret)
    return source.configured(settled(store, name)) if source.settings else source


def catalogue(store: SourceStore, name: str) -> Lookup:
    """A look-up of the objects learned from `name` (read once: a few per customer)."""
    objects = store.objects(name) if SOURCES[name].learns else {}
    return objects.get


def rejected_held(reject: Rejected, source: Source) -> tuple[str, str, bytes, dict | None]:
    """A canonical line the ledger refused (a conflict, say) as a held
    record: the source's own record, verbatim where it was delivered, and its evidence."""
    try:
        line = orjson.loads(reject.raw)
    except orjson.JSONDecodeError:
        return reject.event_id, reject.reason, reject.raw, None
    evidence = line.get(DELIVERY)
    if isinstance(evidence, dict) and isinstance(evidence.get("raw_body"), str):
        return reject.event_id, reject.reason, evidence["raw_body"].encode(), evidence
    original = source.original(line)
    return reject.event_id, reject.reason, orjson.dumps(original), None


def as_held(held: Held) -> tuple[str, str, bytes, dict | None]:
    return held.event_id, held.reason, held.raw, held.evidence


@dataclass
class Retried:
    """What a retry of the quarantine came to."""

    recorded: list[tuple[HeldRecord, str]] = field(default_factory=list)  # and its outcome
    still: list[tuple[HeldRecord, str]] = field(default_factory=list)  # and why


def retry_held(app: LedgerApplication, ingestor: Ingestor, source: str | None = None) -> Retried:
    """Map every held record again with what the ledger knows now and record those that
    map; each recorded one is marked done (its outcome), the others stay held."""
    store = SourceStore(app)
    rows = store.held(source)
    result = Retried()
    if not rows:
        return result
    sources: dict[str, tuple[Source, Lookup]] = {}
    lines: dict[str, list[tuple[int, bytes]]] = {}  # by source: each checked as its own
    owner: dict[int, HeldRecord] = {}
    for row in rows:
        if row.source not in SOURCES:
            result.still.append((row, "no mapping for this source"))
            continue
        if row.source not in sources:
            sources[row.source] = (open_source(store, row.source),
                                   catalogue(store, row.source))
        billing, lookup = sources[row.source]
        mapped = billing.retry(row.raw, row.evidence, lookup)
        store.learn(row.source, mapped.learned)
        if mapped.held:
            result.still.append((row, mapped.held[0].reason))
            continue
        if not mapped.lines:  # carries no revenue after all
            result.recorded.append((row, "ignored"))
        for line in mapped.lines:
            owner[len(owner) + 1] = row
            lines.setdefault(row.source, []).append((len(owner), line))
    outcomes: dict[int, list[Outcome]] = {}
    for name, numbered in lines.items():
        ingestor.ingest(numbered, on_outcome=lambda o: outcomes.setdefault(
            owner[o.line].id, []).append(o), check=partial(check_batch, channel=channel(name)))
    for qid, results in outcomes.items():
        row = next(r for r in rows if r.id == qid)
        bad = [o for o in results if o.status not in ("accepted", "duplicate")]
        if bad:
            result.still.append((row, bad[0].reason or bad[0].status))
        else:
            result.recorded.append((row, results[0].status))
    if result.recorded:
        store.done((r.id, outcome) for r, outcome in result.recorded)
    return result


def keep(store: SourceStore, name: str, learned: Iterable[tuple[str, dict[str, Any]]],
         held: Iterable[tuple[str, str, bytes, dict | None]]) -> int:
    """Keep what a source learned and held; how many objects were new."""
    new = store.learn(name, learned)
    store.hold(name, held)
    return new
