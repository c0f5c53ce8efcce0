"""Reading a canonical feed: numbered raw lines in, checked records or rejections out.

Checking a line (JSON decoding, pydantic validation, content hash) needs nothing from the
store, so for a long feed it runs in a second process, a few batches ahead of the process
that decides and writes: the two halves of ingest then use both cores. Results come back
in feed order either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple

from ledger.batches import batched
from ledger.events import InvalidEvent, content_hash, decode_line, parse_event
from ledger.kinds import PRICED, SUBSCRIPTION_TYPES, UNOWNED, VOID
from ledger.text import printable
from ledger.workers import Spool, forked_pool

LOOKAHEAD = 3  # batches checked ahead of the writer: bounds memory, keeps both busy
# The checking process runs ahead of deciding and writing, which are the critical path:
# at a lower priority it takes what they leave of the two cores, instead of a third of
# each (ingest of a 133k-event feed into SQLite: 13-15% faster over 8 and 10 runs each).
CHECKER_NICE = 10
BATCH_BYTES = 16 << 20  # a batch also ends here: a feed of huge lines stays in bounded memory
# Beyond this a canonical line is refused: it bounds what one stored event costs every
# later reader (a projection page holds thousands of events). A source that translates
# (Stripe) bounds what it receives instead, by its own limit (its `Channel`).
MAX_LINE = 128 << 10


@dataclass(frozen=True)
class Channel:
    """The channel that delivered a line: which event ids it may write and how long a
    line it may send. Ids are namespaced by channel, so a canonical client (a feed, the
    HTTP token) cannot take an id a billing source's webhook will deliver later."""

    name: str
    max_line: int | None = MAX_LINE  # bytes; None when the source bounds its own input
    namespace: str | None = None  # the prefix all its ids carry (e.g. "stripe:")
    reserved: tuple[str, ...] = ()  # prefixes of other channels' ids: refused here
    translated: bool = False  # lines written by revledger from a document it checked

    def refuses(self, event_id: str) -> str | None:
        """Why `event_id` is not this channel's to write, or None."""
        if self.namespace is not None and not event_id.startswith(self.namespace):
            return f"event_id: {self.name} ids start with {self.namespace!r}"
        if event_id.startswith(self.reserved):
            prefix = next(p for p in self.reserved if event_id.startswith(p))
            return (f"event_id: ids starting with {prefix!r} are reserved for events "
                    f"delivered by that billing source; choose another id")
        return None


CANONICAL = Channel("canonical")  # no namespace known: see ledger.sources.channel


@dataclass(frozen=True)
class Rejected:
    line: int
    event_id: str
    reason: str
    raw: bytes

    def __str__(self) -> str:
        """The one line that reports it: input echoed here is escaped (a newline in an id
        cannot start a line of its own)."""
        return f"line {self.line}: {printable(self.event_id)}: {printable(self.reason)}"


class Checked(NamedTuple):
    """A line that passed validation: what deciding and recording it needs."""

    line: int
    raw: bytes
    sha: str
    event_id: str
    type: str
    effective_at: str | None  # normalised fixed-width UTC text
    customer_id: str | None
    subscription_id: str | None
    voids: str | None
    currency: str | None


def check_line(number: int, raw: bytes, channel: Channel = CANONICAL) -> Checked | Rejected:
    """One line from `channel`, checked against the contract and the channel's limits."""
    limit = channel.max_line
    if limit is not None and len(raw) > limit:
        return Rejected(number, "-", f"line longer than {limit >> 10} KiB ({len(raw)} "
                        "bytes): a canonical event is a few hundred bytes", raw)
    try:
        payload = decode_line(raw, translated=channel.translated)
        event = parse_event(payload)
    except InvalidEvent as bad:
        return Rejected(number, bad.event_id, bad.reason, raw)
    if (refused := channel.refuses(event["event_id"])) is not None:
        return Rejected(number, event["event_id"], refused, raw)
    type_ = event["type"]
    return Checked(  # only the type's own fields place it (see ledger.kinds)
        number,
        raw,
        content_hash(payload),
        event["event_id"],
        type_,
        event.get("effective_at"),
        None if type_ in UNOWNED else event["customer_id"],
        event["subscription_id"] if type_ in SUBSCRIPTION_TYPES else None,
        event["voids"] if type_ == VOID else None,
        event.get("currency") if type_ in PRICED else None,
    )


def check_batch(
    batch: list[tuple[int, bytes]], channel: Channel = CANONICAL
) -> list[Checked | Rejected]:
    """Checked records and rejections of a batch's non-blank lines, in order."""
    return [check_line(number, raw, channel) for number, raw in batch if raw.strip()]


Check = Callable[[list[tuple[int, bytes]]], list[Checked | Rejected]]


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


def numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Feed lines numbered from 1, without their line endings."""
    for number, line in enumerate(stream, start=1):
        yield number, line.rstrip(b"\r\n")
