"""Replaying the ledger into the view's rows (every version of every customer), on both
cores.

Customers are cut into runs of about `Plan.run` events, in byte order of their ids. A forked
worker folds runs from the second on, in order. This process folds the first run itself,
handing each result to the consumer (which writes the view, or compares it) as it
comes; whenever the run it needs next is not folded yet, it folds the next run nobody has
taken. Runs are thus folded nearly in order, so a run folded here early is written soon
after, not in a burst at the end while the worker has nothing left to do. Results come
out in customer order either way, exactly as one process folding every customer would
give them.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from queue import Empty
from typing import NamedTuple

from ledger.application import LedgerApplication
from ledger.memory import collector_paused
from ledger.recorder import LedgerRecorder
from ledger.workers import Spool, WorkerDied, forked_process, second_core
from projections.facts import by_customer_stream
from projections.progress import Progress
from projections.versions import fold_versions
from projections.view import CustomerRows, customer_rows

Shaped = tuple[CustomerRows, int]  # a customer's rows, and how many events they come from
Folded = list[Shaped]


class Run(NamedTuple):
    """The customers from `first` (None: the first) up to but excluding `after`."""

    first: str | None
    after: str | None


def fold_run(recorder: LedgerRecorder, upto: int, run: Run) -> Iterator[Shaped]:
    """The rows of a run's customers, in order: what either process does with a run."""
    rows = recorder.iter_customer_events(upto, run.first, run.after)
    for customer, facts in by_customer_stream(rows):
        yield customer_rows(customer, fold_versions(facts)), len(facts)


class Claims:
    """Who folds which run, shared with the worker: each process takes the next run nobody
    has taken, so runs are folded nearly in order and each waits little to be written.
    Run 0 is this process's from the start."""

    def __init__(self, runs: int) -> None:
        context = get_context("fork")
        self.lock = context.Lock()
        self.runs = runs
        self.next = context.RawValue("i", 1)

    def take(self, worker: BaseProcess | None = None) -> int | None:
        """The next free run, if any. Given the `worker`, a lock it died holding (killed
        between two instructions) raises instead of keeping this process waiting."""
        while not self.lock.acquire(timeout=1):
            if worker is not None and not worker.is_alive():
                raise _died(worker)
        try:
            if self.next.value >= self.runs:
                return None
            self.next.value += 1
            return self.next.value - 1
        finally:
            self.lock.release()


@dataclass(frozen=True)
class Plan:
    """How a replay is shared out. The defaults are the product's; tests make runs tiny,
    keep to one core, hand in a fold or claims that fail where a fault is meant, or a
    spool in a directory of their own (the worker's results go through one made in the
    system's temporary directory, `TMPDIR`, by default)."""

    run: int = 5_000  # events per run: small enough to keep both processes busy to the
    # end, large enough that a run's set-up (a query, a result sent back) costs little
    two_cores: Callable[[], bool] = second_core
    fold: Callable[[LedgerRecorder, int, Run], Iterator[Shaped]] = fold_run
    claims: Callable[[int], Claims] = Claims
    spool: Callable[[], Spool] = Spool


PLAN = Plan()  # the product's


def replay(
    app: LedgerApplication, upto: int, on_progress: Progress = lambda done, total: None,
    plan: Plan = PLAN,
) -> Iterator[CustomerRows]:
    """Every customer's view rows (every version) from the events up to position `upto`,
    customers in order; whichever process folds a customer also turns it into rows.
    Memory grows with customers, not events."""
    with collector_paused():
        done = 0
        runs = runs_of(app.ledger_recorder, plan.run)
        for n, (rows, events) in enumerate(_folded(app, upto, runs, plan)):
            yield rows
            done += events
            if n % 1000 == 999:
                on_progress(done, upto)


def runs_of(recorder: LedgerRecorder, size: int) -> list[Run]:
    """The customers cut into runs of about `size` events, in byte order of their ids."""
    bounds: list[str | None] = [None, *recorder.customer_bounds(size), None]
    return [Run(first, after) for first, after in pairwise(bounds)]


def _folded(app: LedgerApplication, upto: int, runs: list[Run], plan: Plan) -> Iterator[Shaped]:
    if len(runs) < 3 or not plan.two_cores():
        for run in runs:
            yield from plan.fold(app.ledger_recorder, upto, run)
        return
    claims, spool = plan.claims(len(runs)), plan.spool()
    results: Queue = get_context("fork").Queue()
    worker = forked_process(_worker, app.url, upto, runs, claims, results, spool, plan.fold)
    try:
        yield from _shared(app.ledger_recorder, upto, runs, claims, results, worker, spool,
                           plan.fold)
    finally:
        worker.kill()  # it only reads; stopped early (an error, a closed generator)
        worker.join()
        spool.close()


def _shared(recorder: LedgerRecorder, upto: int, runs: list[Run], claims: Claims,
            results: Queue, worker: BaseProcess, spool: Spool, fold: Callable
            ) -> Iterator[Shaped]:
    """The runs in order, each folded here or by the worker, whichever took it. Waiting
    for a run the worker has, this process folds the next free one meanwhile."""
    ready: dict[int, Folded] = {}  # folded ahead of their turn, here or by the worker
    for i, run in enumerate(runs):
        if i == 0:
            yield from fold(recorder, upto, run)
            continue
        while i not in ready:
            if _receive(results, ready, worker, spool, wait=False):
                continue
            j = claims.take(worker)
            if j == i:  # the worker has not reached it: folded here, as it is written
                yield from fold(recorder, upto, run)
                break
            if j is None:
                _receive(results, ready, worker, spool, wait=True)
            else:
                ready[j] = list(fold(recorder, upto, runs[j]))
        else:
            yield from ready.pop(i)


def _receive(results: Queue, ready: dict[int, Folded], worker: BaseProcess, spool: Spool,
             wait: bool) -> bool:
    """Collect one run from the worker, if any (waiting for one if `wait`); raises the
    worker's error, or if it died."""
    while True:
        try:
            i, path, error = results.get(timeout=1) if wait else results.get_nowait()
        except Empty:
            if not wait:
                return False
            if not worker.is_alive():
                raise _died(worker) from None
            continue
        if error is not None:
            raise error
        ready[i] = spool.take(path)
        return True


def _died(worker: BaseProcess) -> WorkerDied:
    return WorkerDied(f"the replay worker died (exit code {worker.exitcode})")


def _worker(url: str, upto: int, runs: list[Run], claims: Claims, results: Queue,
            spool: Spool, fold: Callable) -> None:
    """The worker's loop: fold runs from the front through a connection of its own."""
    try:
        app = LedgerApplication(url, create_tables=False)  # kept: it owns the connections
        with collector_paused():
            while (i := claims.take()) is not None:
                results.put((i, spool.put(list(fold(app.ledger_recorder, upto, runs[i]))), None))
    except Exception as error:  # handed over: this process's caller reports it
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(f"{type(error).__name__}: {error}")
        results.put((None, None, error))
    finally:
        results.close()
        results.join_thread()
