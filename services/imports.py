"""`import csv`: subscription periods from a spreadsheet into the ledger, and, with `sync`,
the ledger brought in line with the file by voiding what the file no longer has.

The file is the truth; the ledger records the difference as events. Nothing stored is
edited: a row that disappeared has its events voided (`event.voided`, recorded now), a
corrected row's new events are recorded beside the old ones' voids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import orjson

from ledger.feed import Rejected
from ledger.kinds import VOID
from ledger.sources import Ignored, RefusedDelivery, source_named
from ledger.sources.periods import Layout, PeriodsSource
from services.errors import LedgerError
from services.ingest import IngestResult, record_lines
from services.ledger import open_ledger
from services.notices import notice


@dataclass(frozen=True)
class ImportResult:
    ingest: IngestResult
    rows: int  # data rows read (blank ones aside)
    voided: int  # events voided because their rows left the file (sync)
    stale: int  # events of rows no longer in the file, left counting (no sync)


@dataclass(frozen=True)
class _Imported:
    """What the ledger holds under a namespace: its events still counting, and the ids
    that were voided (never taken again)."""

    live: set[str]
    retired: set[str]


def _imported(url: str, namespace: str) -> tuple[_Imported, str]:
    """What the ledger holds under `namespace`, and its reporting currency."""
    prefix = namespace + ":"
    with open_ledger(url) as app:
        rows = app.ledger_recorder.select_keys_prefixed(prefix)
        currency = app.reporting_currency()
    voided = {r.voids for r in rows if r.voids is not None}
    events = {r.event_id for r in rows if r.voids is None and r.event_id.startswith(prefix)}
    return _Imported(events - voided, voided), currency


def import_periods(
    url: str,
    data: Iterable[bytes],
    layout: Layout,
    *,
    sync: bool = False,
    file_name: str = "the file",
    on_reject: Callable[[Rejected], None] = lambda r: None,
) -> ImportResult:
    """Record the events of every good row (a duplicate for each already recorded); a bad
    row goes to `on_reject` and nothing of it is stored. With `sync`, the events of this
    namespace that no row of the file stands for any more are voided, after the rows."""
    before, currency = _imported(url, layout.namespace)
    if layout.default_currency is None:  # rows without a currency bill in the ledger's
        layout = replace(layout, default_currency=currency)
    source: PeriodsSource = source_named(  # type: ignore[assignment]
        "csv", layout=layout, retired=before.retired)
    untranslated = 0
    stale: set[str] = set()

    def lines() -> Iterator[tuple[int, bytes]]:
        nonlocal untranslated
        for item in source.parse(data):
            if isinstance(item, Rejected):
                untranslated += 1
                on_reject(item)
            elif not isinstance(item, Ignored):
                yield item
        stale.update(before.live - source.emitted)
        if sync and untranslated:  # a bad row has not left the file: void nothing
            notice(f"--sync voided nothing: {untranslated} rows were rejected, and a "
                   "rejected row's earlier events must not be voided as if it had left the "
                   "file; fix the rows and import again")
        elif sync:
            for n, target in enumerate(sorted(stale), start=source.rows + 2):
                yield n, orjson.dumps({
                    "event_id": f"{layout.namespace}:void:{target}", "type": VOID,
                    "voids": target, "reason": f"its row is no longer in {file_name} "
                                               "(import csv --sync)"})

    try:
        result = record_lines(url, lines(), on_reject)
    except RefusedDelivery as exc:
        raise LedgerError(f"{file_name}: {exc}") from None
    result.summary.rejected += untranslated
    synced = sync and not untranslated
    return ImportResult(result, source.rows, len(stale) if synced else 0,
                        0 if synced else len(stale))
