"""Opening a ledger by URL, and the errors a user can act on."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import PersistenceError

from ledger.application import LedgerApplication
from ledger.chain import Link
from ledger.currencies import is_active
from ledger.settings import UnsupportedDatabase, redact, store_kind
from ledger.workers import WorkerDied
from projections.rates import MissingRate
from services.errors import LedgerError

# What a store can raise: eventsourcing's errors, and sqlite3's own where eventsourcing lets
# them through (opening a connection on a read-only file system, say).
DATABASE_ERRORS = (PersistenceError, sqlite3.Error, OSError)


@contextmanager
def open_ledger(url: str) -> Iterator[LedgerApplication]:
    """The ledger at `url`, its tables created on first use; closed afterwards.

    Database failures, a worker process dying, and a figure needing an exchange rate the
    ledger does not hold surface as one `LedgerError`, never a traceback.
    """
    try:
        app = LedgerApplication(url)
    except UnsupportedDatabase as exc:
        raise LedgerError(str(exc)) from None
    except DATABASE_ERRORS as exc:
        raise LedgerError(f"cannot open {redact(url)}: {trouble(exc, url)}") from None
    try:
        yield app
    except DATABASE_ERRORS as exc:
        raise LedgerError(f"database {redact(url)}: {trouble(exc, url)}") from None
    except MissingRate as exc:  # contract v2: the figure cannot be given, never a guess
        raise LedgerError(str(exc)) from None
    except WorkerDied as exc:  # each batch is one transaction: none is left half-written
        raise LedgerError(f"{exc} (killed? out of memory?); what was recorded before stays "
                          "recorded, and running the command again is safe") from None
    finally:
        app.close()


def known_head(app: LedgerApplication, known_at: str | None) -> tuple[Link | None, int]:
    """The last event recorded by `known_at` (all of them if None) and its position (0 for
    none): where an answer as known then reads up to."""
    head = app.ledger_recorder.chain_head(known_at=known_at)
    return head, head.position if head else 0


def trouble(exc: BaseException, url: str) -> str:
    """What went wrong with the database `url`, in one line: the watch's finding if it
    gave up on a server that stopped answering (`ledger.liveness`, PostgreSQL only), else
    the error's own."""
    liveness = sys.modules.get("ledger.liveness")  # loaded only for a postgresql:// ledger
    if store_kind(url) != "postgresql":
        liveness = None  # the watch's findings are about servers, not this file
    if liveness is not None and (waited := liveness.WATCH.unanswered()) is not None:
        return (f"the server did not answer for {waited:.0f} s (frozen or unreachable?); "
                "nothing was half-written, and the same command can be run again once it "
                "answers")
    text = first_line(exc)
    if liveness is not None and ("timeout expired" in text or "couldn't get a connection"
                                 in text):
        return (f"{text}: no connection within {liveness.WATCH.limits.connect_timeout} s "
                "(is the server up, reachable, not frozen?)")
    return text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def init_ledger(url: str, currency: str) -> str:
    """Open (or check) the ledger at `url` with this reporting currency (an active ISO
    4217 code: every figure is shown with its minor unit)."""
    if not is_active(currency):
        raise LedgerError(f"--currency: {currency} is not an active ISO 4217 currency code")
    with open_ledger(url) as app:
        try:
            return app.reporting_currency(currency)
        except ValueError as exc:
            raise LedgerError(str(exc)) from None


def reporting_currency(app: LedgerApplication) -> str:
    """The reporting currency an answer is in, read without writing: a ledger nobody has
    opened yet would be opened in the default, USD, so its (empty) answers are in USD."""
    from eventsourcing.application import AggregateNotFoundError

    from ledger.aggregates import LEDGER_ID

    try:
        return app.repository.get(LEDGER_ID).currency
    except AggregateNotFoundError:
        return "USD"
