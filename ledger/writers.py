"""Where a decided batch is written: here at once, in a thread, or in a forked process.

The pipeline (`ledger.pipeline`) hands each batch to a writer and decides the next one
meanwhile, so the writer that pays depends on the store: PostgreSQL's server does its
part without Python's lock, so a thread suffices; sqlite3 holds the lock between rows,
so on SQLite a forked process with its own connection writes, and a thread would only
take turns with deciding. A feed of one batch (a webhook's event) writes here: a process
would cost more than the batch.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.persistence import StoredEvent

from ledger.application import LedgerApplication
from ledger.instants import format_instant
from ledger.recorder import LedgerRecorder, Row, rows_of
from ledger.workers import forked_pool


class Encoded(Protocol):
    """A batch as written: its events encoded, their index rows, its recording instant."""

    @property
    def stored(self) -> Sequence[StoredEvent]: ...
    @property
    def keys(self) -> Sequence[tuple]: ...
    @property
    def timestamp(self) -> datetime: ...


class Here:
    """Writes each batch here, at once, with `write`."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        self.write = write

    def submit(self, batch: Any) -> Future[None]:
        """The batch's write, done or under way: its result raises what the write did."""
        future: Future[None] = Future()
        try:
            future.set_result(self.write(batch))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Wait for what was submitted; let the resources go."""


class InThread(Here):
    """For a store whose writes wait without the GIL (PostgreSQL's server)."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        super().__init__(write)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="revledger-writer")

    def submit(self, batch: Any) -> Future[None]:
        return self.pool.submit(self.write, batch)

    def close(self) -> None:
        self.pool.shutdown()


Insert = Callable[[LedgerRecorder, Sequence[Row], Sequence[tuple], str], None]


def insert_rows(recorder: LedgerRecorder, rows: Sequence[Row], keys: Sequence[tuple],
                recorded_at: str) -> None:
    """How a writer process appends a batch, by default: the recorder's rows at once."""
    recorder.insert_rows(rows, keys=keys, recorded_at=recorded_at)


class InProcess:
    """For SQLite: a forked process with its own connection writes the batches as rows.
    It starts, and opens the ledger, while the first batch is decided. `insert` (run
    there, so importable by name) appends one batch through the process's recorder."""

    def __init__(self, url: str, insert: Insert = insert_rows) -> None:
        self.url = url
        self.pool = forked_pool()
        self.pool.submit(_open, url, insert)

    def submit(self, batch: Encoded) -> Future[None]:
        # marshal, not pickle: plain tuples of bytes, str and int, to a fork of this very
        # interpreter. Pickle's memo of every object made sending a batch 3 times dearer.
        packed = marshal.dumps((rows_of(batch.stored), batch.keys), 2)
        return self.pool.submit(_insert, self.url, packed, format_instant(batch.timestamp))

    def close(self) -> None:
        self.pool.shutdown()


_opened: dict[str, tuple[LedgerApplication, Insert]] = {}  # of a writer process, by URL


def _open(url: str, insert: Insert = insert_rows) -> None:
    """In a writer process: its own connection to the ledger, opened once."""
    if url not in _opened:
        _opened[url] = (LedgerApplication(url, create_tables=False), insert)


def _insert(url: str, packed: bytes, recorded_at: str) -> None:
    """In a writer process: append a batch (its rows and index rows, marshalled)."""
    rows, keys = marshal.loads(packed)
    _open(url)
    app, insert = _opened[url]
    insert(app.ledger_recorder, rows, keys, recorded_at)
