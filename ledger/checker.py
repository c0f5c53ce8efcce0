"""Checking a long feed in a second process: the checking (`ledger.checks`) needs
nothing from the store, so for a feed of more than one batch it runs in a forked worker,
a few batches ahead of the process that decides and writes: the two halves of ingest then
use both cores. Results come back in feed order either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from itertools import chain

from ledger.batches import batched
from ledger.checks import Check, check_batch
from ledger.feed import Checked, Rejected
from ledger.workers import Spool, forked_pool

LOOKAHEAD = 3  # batches checked ahead of the writer: bounds memory, keeps both busy
# The checking process runs ahead of deciding and writing, which are the critical path:
# at a lower priority it takes what they leave of the two cores, instead of a third of
# each (ingest of a 133k-event feed into SQLite: 13-15% faster over 8 and 10 runs each).
CHECKER_NICE = 10
BATCH_BYTES = 16 << 20  # a batch also ends here: a feed of huge lines stays in bounded memory


def _check_batch_in_worker(batch: list[tuple[int, bytes]], spool: Spool, check: Check) -> str:
    """`check` for the worker process, its results spooled: checked records travel back
    as plain tuples, which pickle in a third of a NamedTuple's time (`_received` makes
    them `Checked`)."""
    return spool.put([tuple(r) if type(r) is Checked else r for r in check(batch)])


_checked = Checked._make


def _received(spool: Spool, path: str) -> list[Checked | Rejected]:
    return [_checked(r) if type(r) is tuple else r for r in spool.take(path)]


def checked_batches(
    lines: Iterable[tuple[int, bytes]],
    size: int,
    *,
    parallel: bool,
    check: Check = check_batch,
    spool: Callable[[], Spool] = Spool,
) -> Iterator[tuple[int, list[Checked | Rejected]]]:
    """(lines read, their results) a batch at a time. With `parallel`, a feed of more than
    one batch is checked in a worker process, by `check` (importable by name: it is sent
    there), its results handed back through a `spool()`."""
    batches = batched(lines, size, weight=lambda line: len(line[1]), limit=BATCH_BYTES)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None or not parallel:
        for batch in chain([first], [second] if second else [], batches):
            yield len(batch), check(batch)
        return
    pool, results = forked_pool(nice=CHECKER_NICE), spool()
    try:
        pending: deque[tuple[int, Future[str]]] = deque()
        pending.append((len(second), pool.submit(_check_batch_in_worker, second, results,
                                                 check)))
        yield len(first), check(first)  # while the worker starts
        for batch in batches:
            pending.append((len(batch), pool.submit(_check_batch_in_worker, batch, results,
                                                    check)))
            if len(pending) >= LOOKAHEAD:
                read, future = pending.popleft()
                yield read, _received(results, future.result())
        while pending:
            read, future = pending.popleft()
            yield read, _received(results, future.result())
    finally:
        pool.shutdown(cancel_futures=True)
        results.close()
