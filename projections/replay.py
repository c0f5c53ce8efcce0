"""Replaying the ledger into the view's rows (every version of every customer), on both
cores.

Customers are cut into runs of about `RUN` events, in byte order of their ids. A forked
worker folds runs from the second on, in order. This process folds the first run itself,
handing each result to the consumer (which writes the view, or compares it) as it
comes; whenever the run it needs next is not folded yet, it folds the last run nobody has
taken. Results come out in customer order either way, exactly as one process folding
every customer would give them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from itertools import pairwise
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from queue import Empty
from typing import TYPE_CHECKING, NamedTuple

from ledger.memory import collector_paused
from ledger.store import LedgerApplication, LedgerRecorder
from ledger.workers import forked_process, second_core
from projections.facts import by_customer_stream
from projections.versions import fold_versions
from projections.view import CustomerRows, customer_rows

if TYPE_CHECKING:
    from projections.projection import Progress

RUN = 5_000  # events per run: small enough to keep both processes busy to the end, large
# enough that a run's set-up (a query, a result sent back) costs little beside it
Shaped = tuple[CustomerRows, int]  # a customer's rows, and how many events they come from
Folded = list[Shaped]


class Run(NamedTuple):
    """The customers from `first` (None: the first) up to but excluding `after`."""

    first: str | None
    after: str | None


def replay(
    app: LedgerApplication, upto: int, on_progress: Progress = lambda done, total: None
) -> Iterator[CustomerRows]:
    """Every customer's view rows (every version) from the events up to position `upto`,
    customers in order; whichever process folds a customer also turns it into rows.
    Memory grows with customers, not events."""
    with collector_paused():
        done = 0
        for n, (rows, events) in enumerate(_folded(app, upto, _runs(app.ledger_recorder))):
            yield rows
            done += events
            if n % 1000 == 999:
                on_progress(done, upto)


def _runs(recorder: LedgerRecorder) -> list[Run]:
    bounds: list[str | None] = [None, *recorder.customer_bounds(RUN), None]
    return [Run(first, after) for first, after in pairwise(bounds)]


def _fold(recorder: LedgerRecorder, upto: int, run: Run) -> Iterator[Shaped]:
    rows = recorder.iter_customer_events(upto, run.first, run.after)
    for customer, facts in by_customer_stream(rows):
        yield customer_rows(customer, fold_versions(facts)), len(facts)


def _folded(app: LedgerApplication, upto: int, runs: list[Run]) -> Iterator[Shaped]:
    if len(runs) < 3 or not second_core():
        for run in runs:
            yield from _fold(app.ledger_recorder, upto, run)
        return
    claims = _Claims(len(runs))
    results: Queue = get_context("fork").Queue()
    worker = forked_process(_worker, app.url, upto, runs, claims, results)
    try:
        yield from _shared(app.ledger_recorder, upto, runs, claims, results, worker)
    finally:
        worker.kill()  # it only reads; stopped early (an error, a closed generator)
        worker.join()


class _Claims:
    """Who folds which run, shared with the worker: it takes runs from the front, this
    process from the back (when it would otherwise wait) and the front (when the worker
    has not reached the run needed next). Each run is taken once."""

    def __init__(self, runs: int) -> None:
        context = get_context("fork")
        self.lock = context.Lock()
        self.front = context.RawValue("i", 1)  # run 0 is this process's from the start
        self.back = context.RawValue("i", runs)  # runs from here on are taken by this process

    def next_for_worker(self) -> int | None:
        with self.lock:
            if self.front.value >= self.back.value:
                return None
            self.front.value += 1
            return self.front.value - 1

    def front_if_free(self, i: int) -> bool:
        """Take run `i` here if the worker has not."""
        with self.lock:
            if self.front.value != i:
                return False
            self.front.value += 1
            return True

    def last_free_after(self, i: int) -> int | None:
        with self.lock:
            j = self.back.value - 1
            if j <= i or j < self.front.value:
                return None
            self.back.value = j
            return j


def _shared(recorder: LedgerRecorder, upto: int, runs: list[Run], claims: _Claims,
            results: Queue, worker: BaseProcess) -> Iterator[Shaped]:
    """The runs in order, each folded here or by the worker, whichever took it."""
    taken: dict[int, Folded] = {}  # folded here ahead of their turn
    arrived: dict[int, Folded] = {}
    for i, run in enumerate(runs):
        if i in taken:
            yield from taken.pop(i)
        elif i == 0 or claims.front_if_free(i):
            yield from _fold(recorder, upto, run)
        else:
            while i not in arrived:
                if not _receive(results, arrived, worker, wait=False):
                    j = claims.last_free_after(i)
                    if j is None:
                        _receive(results, arrived, worker, wait=True)
                    else:
                        taken[j] = list(_fold(recorder, upto, runs[j]))
            yield from arrived.pop(i)


def _receive(results: Queue, arrived: dict[int, Folded], worker: BaseProcess,
             wait: bool) -> bool:
    """Collect one run from the worker, if any (waiting for one if `wait`); raises the
    worker's error, or if it died."""
    while True:
        try:
            i, folded, error = results.get(timeout=1) if wait else results.get_nowait()
        except Empty:
            if not wait:
                return False
            if not worker.is_alive():
                code = worker.exitcode
                raise RuntimeError(f"the replay worker died (exit code {code})") from None
            continue
        if error is not None:
            raise error
        arrived[i] = folded
        return True


def _worker(url: str, upto: int, runs: list[Run], claims: _Claims, results: Queue) -> None:
    """The worker's loop: fold runs from the front through a connection of its own."""
    try:
        app = LedgerApplication(url, create_tables=False)  # kept: it owns the connections
        with collector_paused():
            while (i := claims.next_for_worker()) is not None:
                results.put((i, list(_fold(app.ledger_recorder, upto, runs[i])), None))
    except Exception as error:  # handed over: this process's caller reports it
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(f"{type(error).__name__}: {error}")
        results.put((None, None, error))
    finally:
        results.close()
        results.join_thread()
