"""`verify`: the hash chain recomputed over every stored event; every stored event held
again to the contract, its index row and the recording rules; and the projection (every
version of its rows, and the query columns stored from them) held to the reference fold.
Each check shares no code with the path that wrote what it checks."""

from __future__ import annotations

import time
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from typing import cast

from ledger.application import LedgerApplication
from ledger.audit_queries import AuditQueries
from ledger.chain import ChainReport, check
from ledger.recheck import Break, Recheck, recheck
from ledger.workers import WorkerDied, forked_pool, second_core
from projections.check import Comparison, compare
from projections.projection import MRRProjection
from services.ledger import open_ledger


@dataclass(frozen=True)
class Verification:
    chain: ChainReport
    events: Recheck = field(default_factory=Recheck)
    projection: Comparison = field(default_factory=Comparison)
    seconds: float = 0.0

    @property
    def ledger_break(self) -> Break | None:
        """The first break of the stored events (the chain's, else the re-checks')."""
        chain = self.chain
        if chain.problem is not None:
            return Break(chain.position, chain.event_id, chain.problem)
        return self.events.problem

    @property
    def ok(self) -> bool:
        return self.ledger_break is None and self.projection.difference is None


def verify_ledger(url: str) -> Verification:
    """The chain first: nothing else is worth checking over tampered bytes. Then the
    events are re-checked (in a second process, where there is a second core) while the
    projection is compared; a break of the events is reported before any difference of
    the projection, which proves nothing about events that should not be there."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        chain = check(app.ledger_recorder.iter_chain())
        if chain.problem is not None:
            return Verification(chain, seconds=time.perf_counter() - started)
        if not second_core():
            events = recheck(cast(AuditQueries, app.recorder))
            compared = compare_projection(app) if events.problem is None else Comparison()
            return Verification(chain, events, compared, time.perf_counter() - started)
        pool = forked_pool()
        try:
            pending = pool.submit(recheck_at, url)
            compared = compare_projection(app)
            events = pending.result()
        except BrokenExecutor:
            raise WorkerDied("the process re-checking the events died") from None
        finally:
            pool.shutdown(cancel_futures=True)
        if events.problem is not None:
            compared = Comparison()
        return Verification(chain, events, compared, time.perf_counter() - started)


def compare_projection(app: LedgerApplication) -> Comparison:
    projection = MRRProjection(app)
    projection.catch_up()
    return compare(projection)


def recheck_at(url: str) -> Recheck:
    """`recheck` in a worker process, on a connection of its own."""
    app = LedgerApplication(url, create_tables=False)
    try:
        return recheck(cast(AuditQueries, app.recorder))
    finally:
        app.close()
