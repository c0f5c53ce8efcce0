"""The rules that keep the ledger correct, decided without any I/O.

A batch of checked records (`ledger.feed.Checked`) is decided against what the ledger
already knows, asked through a narrow interface (`Known`): what an event id was recorded
as, which void voids an event, where a stream stands. Each record is accepted (placed as
the next version of its stream), a duplicate (same id, same content), a conflict (same
id, other content) or rejected with its reason:

- a void names an event the ledger holds, which is neither a void nor voided already;
  it is recorded in its target's stream, under its target's customer and subscription;
- a subscription keeps the customer it was opened with;
- an exchange rate (`fx.rate`, about no customer) is a stream of its own;
- a batch is recorded after the ledger's last event, whatever the clock says (`stamp`).

The decisions of a batch are themselves a layer over what was known before it (`Layer`):
the batch answers for what it has recorded so far, then asks below. The same layer, set
over a fresh look at the store, lets the next batch be decided as if this one had landed
while it is still being written (`Layer.over`). Nothing here reads the store: callers
gather what a batch needs beforehand (`lookups`, `streams`), which keeps the rules fast to
test (in memory, `Facts`) and the store's reads to one query per kind per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from ledger.feed import Checked, Rejected  # plain records: nothing of checking is loaded
from ledger.kinds import VOID

CONFLICT = "conflict: event_id already recorded with different content"


class Recording(NamedTuple):
    """What the ledger keeps of a recorded event for deciding later ones."""

    sha: str  # the content hash: the same id with another hash is a conflict
    type: str
    stream: str  # where it was recorded (see `stream_of`); a void's is its target's
    customer_id: str | None
    subscription_id: str | None


class Head(NamedTuple):
    """Where a stream stands: its last version and the customer it was opened with."""

    version: int
    customer_id: str | None


class Known(Protocol):
    """What the ledger already holds, as far as deciding needs it; None for unknown."""

    def recorded(self, event_id: str) -> Recording | None: ...
    def voided_by(self, event_id: str) -> str | None: ...
    def head(self, stream: str) -> Head | None: ...


def stream_of(customer_id: str | None, subscription_id: str | None, event_id: str = "") -> str:
    """A stream's key: `s:` + subscription id, else `c:` + customer id, else (an exchange
    rate, about no customer) `r:` + its own event id. Text keys hash much faster than the
    streams' aggregate ids (UUIDs)."""
    if subscription_id is not None:
        return "s:" + subscription_id
    if customer_id is not None:
        return "c:" + customer_id
    assert event_id, "an event about no customer is an exchange rate, its own stream"
    return "r:" + event_id


class Facts:
    """`Known` from plain dicts: what a look-up in the store found for one batch, or a
    whole ledger held in memory. Its answers are the dicts' own `get` (no Python call:
    every record of a batch asks), so the dicts are updated in place, never replaced."""

    def __init__(
        self,
        recordings: dict[str, Recording] | None = None,
        voids: dict[str, str] | None = None,  # target -> the void voiding it
        heads: dict[str, Head] | None = None,
    ) -> None:
        self.recordings = {} if recordings is None else recordings
        self.voids = {} if voids is None else voids
        self.heads = {} if heads is None else heads
        self.recorded: Callable[[str], Recording | None] = self.recordings.get
        self.voided_by: Callable[[str], str | None] = self.voids.get
        self.head: Callable[[str], Head | None] = self.heads.get


class Layer:
    """What one batch recorded, answering first, over what was known before it (`below`).
    Only its own recordings are held: a layer set on another sees that one's, not the
    layers beneath it, so memory stays with the batches in flight."""

    def __init__(
        self,
        below: Known,
        recordings: dict[str, Recording] | None = None,
        voids: dict[str, str] | None = None,
        heads: dict[str, Head] | None = None,
    ) -> None:
        self.below = below
        self.recordings = {} if recordings is None else recordings
        self.voids = {} if voids is None else voids
        self.heads = {} if heads is None else heads

    # `or`: what a layer holds is never empty (tuples of fields, ids of 1+ characters).
    def recorded(self, event_id: str) -> Recording | None:
        return self.recordings.get(event_id) or self.below.recorded(event_id)

    def voided_by(self, event_id: str) -> str | None:
        return self.voids.get(event_id) or self.below.voided_by(event_id)

    def head(self, stream: str) -> Head | None:
        return self.heads.get(stream) or self.below.head(stream)

    def over(self, below: Known) -> Layer:
        """This batch's recordings over `below` instead (a fresher look at the store)."""
        return Layer(below, self.recordings, self.voids, self.heads)


class Placed(NamedTuple):
    """An accepted record and its place: a new version of a stream."""

    event: Checked
    stream: str
    version: int
    customer_id: str | None  # a void's is its target's
    subscription_id: str | None


class Decided(Layer):
    """A batch's decisions, in feed order within each outcome."""

    def __init__(self, below: Known) -> None:
        super().__init__(below)
        self.accepted: list[Placed] = []
        self.duplicates: list[Checked] = []
        self.rejected: list[Rejected] = []  # conflicts among them


@dataclass(frozen=True)
class Outcome:
    """What became of one record: accepted, duplicate, conflict or rejected."""

    line: int
    event_id: str
    status: str
    reason: str | None = None


def outcomes(decided: Decided, rejected: Iterable[Rejected] = ()) -> Iterator[Outcome]:
    """Each record's outcome; `rejected` are records refused before deciding (the checks)."""
    for c in decided.accepted:
        yield Outcome(c.event.line, c.event.event_id, "accepted")
    for d in decided.duplicates:
        yield Outcome(d.line, d.event_id, "duplicate")
    for r in (*rejected, *decided.rejected):
        status = "conflict" if r.reason == CONFLICT else "rejected"
        yield Outcome(r.line, r.event_id, status, r.reason)


def stamp(now: datetime, last: datetime | None) -> datetime:
    """A batch's recording instant: `now`, unless the clock went back to or before the
    ledger's `last` one; then just after it. Recording instants never decrease along the
    ledger's order, so what it knew at any instant is a prefix of it (`--known-at`)."""
    if last is not None and now <= last:
        return last + timedelta(microseconds=1)
    return now


def lookups(candidates: Collection[Checked]) -> tuple[set[str], set[str]]:
    """What deciding a batch asks of recorded events: the ids of its records (recorded
    before?) and the events its voids name (recorded? voided?)."""
    return {c.event_id for c in candidates}, {c.voids for c in candidates if c.voids is not None}


def streams(candidates: Iterable[Checked], known: Known) -> set[str]:
    """The streams a batch may extend, whose heads deciding it asks for: a void's is its
    target's, found in `known` (one recorded in the same batch is there by its own record)."""
    wanted = set()
    for c in candidates:
        if c.voids is None:
            # stream_of, inline (as in `_decide`): every record of every batch goes by here
            wanted.add("s:" + c.subscription_id if c.subscription_id is not None
                       else "c:" + c.customer_id if c.customer_id is not None
                       else "r:" + c.event_id)
        elif (target := known.recorded(c.voids)) is not None and target.type != VOID:
            wanted.add(target.stream)
    return wanted


def decide(candidates: Iterable[Checked], known: Known) -> Decided:
    """Each record's outcome, in order, each decided on `known` and the records before it."""
    batch = Decided(known)
    for c in candidates:
        try:
            _decide(c, batch)
        except ValueError as refused:
            batch.rejected.append(Rejected(c.line, c.event_id, str(refused), c.raw))
    return batch


def _decide(c: Checked, batch: Decided) -> None:
    """One record, on the batch's records before it, then on what lies below the batch.
    (`batch` is asked as a layer would, its own dicts first, inline: every record asks
    twice.)"""
    below = batch.below
    previous = batch.recordings.get(c.event_id) or below.recorded(c.event_id)
    if previous is not None:
        if previous.sha != c.sha:
            raise ValueError(CONFLICT)
        batch.duplicates.append(c)
        return
    if c.voids is not None:
        stream, customer_id, subscription_id = _target(c.voids, batch)
    else:
        customer_id, subscription_id = c.customer_id, c.subscription_id
        stream = ("s:" + subscription_id if subscription_id is not None
                  else "c:" + customer_id if customer_id is not None
                  else "r:" + c.event_id)  # stream_of, inline
    head = batch.heads.get(stream) or below.head(stream)
    if head is None:
        version, owner = 1, customer_id
    elif subscription_id is not None and head.customer_id != customer_id:
        raise ValueError(f"customer_id: subscription {subscription_id} belongs to "
                         f"customer {head.customer_id}")
    else:
        version, owner = head.version + 1, head.customer_id
    batch.heads[stream] = _new(Head, (version, owner))
    batch.recordings[c.event_id] = _new(
        Recording, (c.sha, c.type, stream, customer_id, subscription_id))
    if c.voids is not None:
        batch.voids[c.voids] = c.event_id
    batch.accepted.append(_new(Placed, (c, stream, version, customer_id, subscription_id)))


# The records' NamedTuples are made as plain tuples are: a NamedTuple's own constructor is
# a Python function, which made deciding a tenth dearer.
_new = tuple.__new__


def _target(target: str, known: Known) -> tuple[str, str | None, str | None]:
    """The stream, customer and subscription of the event a void names."""
    recording = known.recorded(target)
    if recording is None:
        raise ValueError(f"voids: the ledger holds no event {target!r}")
    if recording.type == VOID:
        raise ValueError(f"voids: {target!r} is itself a void")
    if (void := known.voided_by(target)) is not None:
        raise ValueError(f"voids: {target!r} is already voided by {void!r}")
    return recording.stream, recording.customer_id, recording.subscription_id
