"""`verify`: the hash chain recomputed over every stored event; every stored event held
again to the contract, its index row and the recording rules; and the projection (every
version of its rows, and the query columns stored from them) held to the reference fold.
Each check shares no code with the path that wrote what it checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass, field

from ledger.application import LedgerApplication
from ledger.chain import ChainReport, check
from ledger.recheck import Break, Recheck, recheck
from ledger.workers import WorkerDied, forked_pool, second_core
from projections.check import Comparison, compare
from services.ledger import open_ledger
from services.projections import caught_up
from services.tree_check import TreeReport, check_tree

Events = tuple[ChainReport, Recheck, TreeReport]  # what the stored events were found to be


@dataclass(frozen=True)
class Verification:
    chain: ChainReport
    events: Recheck = field(default_factory=Recheck)
    projection: Comparison = field(default_factory=Comparison)
    seconds: float = 0.0
    tree: TreeReport = field(default_factory=TreeReport)

    @property
    def ledger_break(self) -> Break | None:
        """The first break of the stored events (the chain's, else the re-checks')."""
        chain = self.chain
        if chain.problem is not None:
            return Break(chain.position, chain.event_id, chain.problem)
        return self.events.problem

    @property
    def ok(self) -> bool:
        return (self.ledger_break is None and self.tree.problem is None
                and self.projection.difference is None)


def verify_ledger(url: str, *, parallel: bool | None = None, checkpoint: str | None = None,
                  key: str | None = None) -> Verification:
    """The stored events are checked (the chain, then each event again), and the
    projection compared with the reference: side by side in two processes where there is
    a second core. A break of the events is reported rather than any difference of the
    projection, which proves nothing of events that should not be there, and ends the
    comparison early. `parallel` (default: whether there is a second core) chooses. The
    Merkle tree is checked with the events (held to the signed `checkpoint`, checked with
    the verifier `key`, if given)."""
    started = time.perf_counter()
    with open_ledger(url) as app:
        if not (second_core() if parallel is None else parallel):
            chain, events, tree = check_events(app, checkpoint, key)
            compared = (compare_projection(app) if not _problem(chain, events, tree)
                        else Comparison())
            return Verification(chain, events, compared, time.perf_counter() - started, tree)
        pool = forked_pool()
        try:
            pending = pool.submit(check_events_at, url, checkpoint, key)
            try:
                compared = compare_projection(app, lambda: _broken(pending))
            except Exception:  # of bytes the events' check finds tampered with, say
                if not _broken(pending, wait=True):
                    raise
                compared = Comparison()
            chain, events, tree = pending.result()
        except BrokenExecutor:
            raise WorkerDied("the process checking the events died") from None
        finally:
            pool.shutdown(cancel_futures=True)
        if _problem(chain, events, tree):
            compared = Comparison()
        return Verification(chain, events, compared, time.perf_counter() - started, tree)


def _problem(chain: ChainReport, events: Recheck, tree: TreeReport) -> bool:
    return (chain.problem is not None or events.problem is not None
            or tree.problem is not None)


def _broken(pending: Future[Events], *, wait: bool = False) -> bool:
    """Whether the events' check found a break (or failed); False while it runs, unless
    told to wait for it."""
    if not wait and not pending.done():
        return False
    if pending.exception() is not None:
        return True
    return _problem(*pending.result())


def check_events(
    app: LedgerApplication, checkpoint: str | None = None, key: str | None = None
) -> Events:
    """The chain, then the Merkle tree and each event again where the chain holds: a check
    of bytes that were not linked would name the wrong fault."""
    chain = check(app.ledger_recorder.iter_chain())
    if chain.problem is not None:
        return chain, Recheck(), TreeReport()
    tree = check_tree(app.ledger_recorder, checkpoint, key)
    return chain, recheck(app.ledger_recorder.audit_queries()), tree


def check_events_at(url: str, checkpoint: str | None = None, key: str | None = None) -> Events:
    """`check_events` in a worker process, on a connection of its own."""
    app = LedgerApplication(url, create_tables=False)
    try:
        return check_events(app, checkpoint, key)
    finally:
        app.close()


def compare_projection(app: LedgerApplication, stop: Callable[[], bool] = lambda: False
                       ) -> Comparison:
    return compare(caught_up(app), stop)
