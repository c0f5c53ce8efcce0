"""What deciding a batch needs of the store, read in at most two queries.

The rules (`ledger.rules`) ask about single events and streams; the store answers best a
batch at a time. `StoreLookup.known` reads, for one batch, the index rows of its records'
ids and of its voids' targets (what is recorded and what is voided, in one statement, so
as of one moment even while other writers commit), then the heads of the streams the
batch may extend: from the batch being written, else from a bounded cache of what the
last batches left, else in one query for all the rest. The batch being written (`expect`,
until `landed`) is a layer over what the store answers (`ledger.rules.Layer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from uuid import UUID

from ledger.aggregates import customer_uuid, rate_uuid, subscription_uuid
from ledger.feed import Checked
from ledger.kinds import FX_RATE
from ledger.recorder import KeyRow, LedgerRecorder
from ledger.rules import Facts, Head, Known, Layer, Recording, lookups, stream_of, streams

Cached = tuple[UUID, Head]  # a stream's aggregate id, and its head


class Heads(dict[str, Cached]):
    """Stream heads as the last batches left them, at most `size`: when full, the older
    half goes. A head not here costs a look-up in the store's index (one query for a
    batch's misses), never a wrong decision. A plain dict keeps a hit as cheap as a dict
    look-up, which eventsourcing's thread-safe LRU cache is not (5% of deciding). The
    aggregate id rides along: uuid5 costs more than the look-up."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def update(self, heads: dict[str, Cached]) -> None:  # type: ignore[override]
        excess = len(self) + len(heads) - self.size
        if excess > 0:
            for key in list(islice(self, max(excess, len(self) // 2))):
                del self[key]
            if len(heads) > self.size:
                heads = dict(islice(heads.items(), len(heads) - self.size, None))
        super().update(heads)


class StoreLookup:
    """Reads what the rules need of the store for one batch; caches stream heads."""

    def __init__(self, recorder: LedgerRecorder, cache_size: int) -> None:
        self.recorder = recorder
        self.cache = Heads(cache_size)
        # the batch being written: its decisions and its streams' aggregate ids
        self.in_flight: tuple[Layer, dict[str, UUID]] | None = None

    def known(self, candidates: Sequence[Checked]) -> tuple[Known, dict[str, UUID]]:
        """What the ledger knows for `candidates`: the store's answers, under the batch
        being written (taken as recorded) if any; and the aggregate id of every stream
        they may extend."""
        pending, pending_ids = self.in_flight or (None, {})
        event_ids, targets = lookups(candidates)
        # One statement: what is recorded and what is voided, as of the same moment.
        rows = self.recorder.select_keys_where({"event_id": event_ids | targets,
                                                "voids": targets})
        store = Facts({k.event_id: _recording(k) for k in rows},
                      {k.voids: k.event_id for k in rows if k.voids in targets})
        known: Known = store if pending is None else pending.over(store)
        ids = self._heads(streams(candidates, known), store, pending, pending_ids)
        return known, ids

    def _heads(
        self, wanted: set[str], store: Facts, pending: Layer | None, pending_ids: dict[str, UUID]
    ) -> dict[str, UUID]:
        """Fills `store.heads` with the wanted streams' heads the pending batch does not
        hold (from the cache, else from one query); the ids of all wanted streams."""
        moved = pending.heads if pending is not None else {}
        ids: dict[str, UUID] = {}
        missing: dict[UUID, str] = {}
        for stream in wanted:
            if stream in moved:
                ids[stream] = pending_ids[stream]
            elif (cached := self.cache.get(stream)) is not None:
                ids[stream], store.heads[stream] = cached
            else:  # the aggregate id from the stream's key (`ledger.rules.stream_of`)
                stream_id = (subscription_uuid(stream[2:]) if stream[0] == "s"
                             else customer_uuid(stream[2:]) if stream[0] == "c"
                             else rate_uuid(stream[2:]))
                ids[stream] = stream_id
                missing[stream_id] = stream
        for stream_id, version, customer_id in self.recorder.select_heads(list(missing)):
            store.heads[missing[stream_id]] = Head(version, customer_id)
        return ids

    def expect(self, decided: Layer, ids: dict[str, UUID]) -> None:
        """A batch is being written: the next is decided on it, as a layer over the store,
        until it has `landed`; its heads are cached as the store's."""
        self.in_flight = decided, ids
        heads = decided.heads
        # zip and map rather than a comprehension: no Python step per stream
        self.cache.update(dict(zip(heads, zip(map(ids.__getitem__, heads), heads.values(),
                                                  strict=True), strict=True)))

    def landed(self) -> None:
        """The batch being written is in the store now: the store answers for it."""
        self.in_flight = None

    def forget(self) -> None:
        """Another writer moved on, or the batch being written did not land: what is
        cached of the store may be stale."""
        self.cache = Heads(self.cache.size)
        self.in_flight = None


def _recording(row: KeyRow) -> Recording:
    # A void is indexed under its target's customer and subscription: its target's stream.
    # An exchange rate is its own stream; a void's own row places nothing (it is no target).
    known = (row.customer_id is not None or row.subscription_id is not None
             or row.type == FX_RATE)
    stream = stream_of(row.customer_id, row.subscription_id, row.event_id) if known else ""
    return Recording(row.content_sha256, row.type, stream, row.customer_id,
                     row.subscription_id)
