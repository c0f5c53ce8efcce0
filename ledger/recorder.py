"""What the rest of the code may ask of a ledger's recorder (`LedgerRecorder`), and the
rows it speaks in: the index's rows, the stored events, the plain tuples a writer inserts.

Each database's recorder (`ledger.sqlite`, `ledger.postgres`) implements it with the
statements both share (`ledger.queries`) in its own dialect; everything else holds a
recorder only through this interface (`LedgerApplication.ledger_recorder`), `verify`'s
whole-table reads included (`audit_queries`). A projection's tables are its own tracking
recorder's (`projections/`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.chain import Link
from ledger.merkle import Key

if TYPE_CHECKING:
    from ledger.audit_queries import AuditQueries

T = TypeVar("T")

KEY_COLUMNS = (  # the index's columns, in its table's order (`KeyRow`'s fields)
    "position",
    "event_id",
    "content_sha256",
    "type",
    "customer_id",
    "subscription_id",
    "voids",
)


@dataclass(frozen=True)
class KeyRow:
    """What the index knows of one recorded canonical event."""

    position: int  # of the stored event, in the ledger's total order
    event_id: str
    content_sha256: str
    type: str
    customer_id: str | None
    subscription_id: str | None
    voids: str | None


@dataclass(frozen=True)
class EventRow:
    """A stored canonical event with its position in the ledger's total order."""

    position: int
    originator_id: UUID
    originator_version: int
    state: bytes
    chain_sha256: str | None


Row = tuple[bytes, int, str, bytes]  # a stored event: aggregate id bytes, version, topic, state


def rows_of(stored_events: Sequence[StoredEvent]) -> list[Row]:
    """Stored events as plain tuples: what the recorders insert, and what ingest hands to
    its SQLite writer process (marshalled, which takes only plain values)."""
    return [(s.originator_id.bytes, s.originator_version, s.topic, s.state)
            for s in stored_events]


def key_rows(positions: Sequence[int], keys: Sequence[tuple]) -> list[tuple]:
    """The index rows of stored events at these positions, from `keys`: the rest of each
    event's row, one per event."""
    return [(p, *k) for p, k in zip(positions, keys, strict=True)]



class LedgerRecorder(Protocol):
    """What the ledger needs of its recorder beyond eventsourcing's ApplicationRecorder
    (implemented for SQLite in `ledger.sqlite` and for PostgreSQL in `ledger.postgres`)."""

    writes_in_thread: bool  # whether ingest gains by writing in a thread of its own

    # Appending: eventsourcing's `insert_events`, given the index rows (`keys`) and the
    # transaction's instant; `insert_rows` the same for events already encoded as rows.
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None: ...
    def insert_rows(
        self, rows: Sequence[Row], *, keys: Sequence[tuple] | None = None,
        recorded_at: str | None = None,
    ) -> None: ...
    def select_notifications(self, start: int | None, limit: int) -> Sequence[Any]: ...
    def max_notification_id(self) -> int | None: ...
    def select_keys_where(self, tests: dict[str, Iterable[str]]) -> list[KeyRow]: ...
    def select_keys_prefixed(self, prefix: str) -> list[KeyRow]: ...
    def select_heads(self, ids: Sequence[UUID]) -> list[tuple[UUID, int, str]]: ...
    def select_events_by(
        self, filters: dict[str, str], upto: int | None = None
    ) -> list[EventRow]: ...
    def first_event_recorded_at(self) -> str | None: ...
    def iter_events_by(
        self, filters: dict[str, str], upto: int | None = None
    ) -> Iterator[EventRow]: ...
    def count_keys(self) -> int: ...
    def upgrade_index(self) -> bool: ...
    def chain_head(
        self, *, known_at: str | None = None, upto: int | None = None
    ) -> Link | None: ...
    def select_customer_events(self, customers: Sequence[str], upto: int) -> list[tuple]: ...
    def iter_customer_events(
        self, upto: int, first: str | None = None, after: str | None = None
    ) -> Iterator[tuple[str, int, bytes]]: ...
    def customer_bounds(self, every: int) -> list[str]: ...
    def iter_rate_events(self, upto: int) -> Iterator[tuple[int, bytes]]: ...
    def iter_states(self, upto: int) -> Iterator[tuple[int, bytes]]: ...
    def iter_chain(self) -> Iterator[tuple]: ...
    # The Merkle tree (ledger.treestore.TreeQueries)
    def tree_behind(self) -> bool: ...
    def upgrade_tree(self) -> int: ...
    def tree_size(self, upto: int | None = None) -> int: ...
    def tree_root(self, size: int) -> bytes: ...
    def tree_nodes(self, keys: set[Key]) -> dict[Key, bytes]: ...
    def tree_compute(self, compute: Callable[[Callable[[Key], bytes]], T]) -> T: ...
    def leaf_index(self, position: int) -> int | None: ...
    def tree_leaves(self, start: int, end: int) -> list[tuple]: ...
    # `verify`'s own reads of the tables (`ledger.audit_queries`)
    def audit_queries(self) -> AuditQueries: ...
    # Tables beside the ledger's, in the same database (`ledger.held`): statements written
    # once with `?` placeholders, run in the database's dialect.
    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]: ...
    def write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None: ...
    def tables_exist(self, names: Sequence[str]) -> bool: ...
    def create_tables(self, names: Sequence[str], ddl: Sequence[str]) -> None: ...
