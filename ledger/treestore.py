"""The Merkle tree's table (`merkle_tree`, see `ledger.merkle`), written and read once for
both stores.

One row per complete subtree: (level, idx, position, sha256), the position set on leaves
only (the stored event the leaf is). The recorder writes a transaction's rows in the same
transaction as its events and chain links, from the tree's frontier read inside it (the
writer holds the store's write lock, so the frontier is the tree's). Rows are only ever
inserted, like every ledger table's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from ledger import merkle
from ledger.chain import canonical_rows

T = TypeVar("T")

TREE_DDL = [
    "CREATE TABLE IF NOT EXISTS merkle_tree (level BIGINT NOT NULL, idx BIGINT NOT NULL, "
    "position BIGINT, sha256 TEXT NOT NULL, PRIMARY KEY (level, idx))",
    # A leaf by its event's position: the tree as known at a position, an event's proof.
    "CREATE UNIQUE INDEX IF NOT EXISTS merkle_tree_position ON merkle_tree (position) "
    "WHERE position IS NOT NULL",
]

_LAST_LEAF = "SELECT idx, position FROM merkle_tree WHERE level = 0 ORDER BY idx DESC LIMIT 1"


class TreeQueries:
    """The tree's reads and its append, over the recorder's dialect (`_rows`, `param`)."""

    param = "?"  # the placeholder of statements run on a writing cursor
    events_table_name: str
    position: str

    def _rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        raise NotImplementedError

    # --- writing, inside the recorder's transaction ---------------------------------

    def _tree_rows(
        self, c: Any, positions: Sequence[int], canonical: Sequence[bytes]
    ) -> list[tuple]:
        """The rows (level, idx, position, sha256) appending these stored events (their
        canonical bytes, `ledger.chain.canonical_rows`) adds to the tree, read on the
        writing cursor."""
        c.execute(_LAST_LEAF)
        last = c.fetchone()
        size = last[0] + 1 if last else 0
        keys = merkle.frontier(size)
        found = self._nodes_on(c, keys)
        leaves = map(merkle.leaf_hash, canonical)
        return [
            (level, idx, positions[idx - size] if level == 0 else None, digest.hex())
            for level, idx, digest in merkle.append(size, [found[k] for k in keys], leaves)
        ]

    def _nodes_on(self, c: Any, keys: Sequence[merkle.Key]) -> dict[merkle.Key, bytes]:
        if not keys:
            return {}
        test = " OR ".join([f"(level = {self.param} AND idx = {self.param})"] * len(keys))
        c.execute(f"SELECT level, idx, sha256 FROM merkle_tree WHERE {test}",
                  [v for key in keys for v in key])
        found = {(row[0], row[1]): bytes.fromhex(row[2]) for row in c.fetchall()}
        if len(found) != len(keys):
            raise LookupError("the Merkle tree's frontier is incomplete: run `revledger verify`")
        return found

    def _missing_leaves(self, c: Any) -> tuple[list[int], list[tuple]]:
        """The chained events the tree has no leaf for yet (a ledger written before the
        tree existed): positions and stored rows, in position order."""
        c.execute(_LAST_LEAF)
        last = c.fetchone()
        e = self.position
        c.execute(
            f"SELECT e.{e}, e.originator_id, e.originator_version, e.topic, e.state "
            f"FROM {self.events_table_name} e JOIN event_chain k ON k.position = e.{e} "
            f"WHERE e.{e} > {self.param} ORDER BY e.{e}", [last[1] if last else 0],
        )
        found = c.fetchall()
        rows = [(_id_bytes(r[1]), r[2], r[3], _bytes(r[4])) for r in found]
        return [r[0] for r in found], rows

    def _insert_tree(self, c: Any, rows: Sequence[tuple]) -> None:
        raise NotImplementedError

    def _plain(self, c: Any) -> Any:
        """A cursor of this transaction giving rows as tuples."""
        return c

    def tree_behind(self) -> bool:
        """Whether the ledger has chained events but no tree at all: a ledger written before
        the tree. (A tree that lacks the last events is not completed: that is what
        `verify` reports, as events written around the ledger.)"""
        if self._rows(_LAST_LEAF, []):
            return False
        return bool(self._rows("SELECT position FROM event_chain LIMIT 1", []))

    def upgrade_tree(self) -> int:
        """Add the leaves (and nodes) of the chained events the tree lacks, in one
        transaction, in position order: once, for a ledger written before the tree (the
        caller holds the writers' turn). The number of leaves added."""
        with self.datastore.transaction(commit=True) as t:  # type: ignore[attr-defined]
            c = self._plain(t)
            positions, rows = self._missing_leaves(c)
            if positions:
                self._insert_tree(c, self._tree_rows(c, positions,
                                                     canonical_rows(positions, rows)))
        return len(positions)

    # --- reading ----------------------------------------------------------------------

    def tree_size(self, upto: int | None = None) -> int:
        """Leaves in the tree, or in the tree as it was once the event at position `upto`
        was its last leaf (the events up to that position)."""
        if upto is None:
            rows = self._rows(_LAST_LEAF, [])
        else:
            rows = self._rows("SELECT idx, position FROM merkle_tree WHERE position <= ? "
                              "ORDER BY position DESC LIMIT 1", [upto])
        return rows[0][0] + 1 if rows else 0

    def tree_nodes(self, keys: set[merkle.Key]) -> dict[merkle.Key, bytes]:
        found: dict[merkle.Key, bytes] = {}
        ordered = sorted(keys)
        for at in range(0, len(ordered), 200):
            chunk = ordered[at:at + 200]
            test = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
            for level, idx, sha in self._rows(
                f"SELECT level, idx, sha256 FROM merkle_tree WHERE {test}",
                [v for key in chunk for v in key],
            ):
                found[(level, idx)] = bytes.fromhex(sha)
        return found

    def tree_compute(self, compute: Callable[[Callable[[merkle.Key], bytes]], T]) -> T:
        """A root or proof from the stored nodes it needs, fetched together."""
        return compute(merkle.lookup(self.tree_nodes(merkle.needed(compute))))

    def tree_root(self, size: int) -> bytes:
        return self.tree_compute(lambda nodes: merkle.root(size, nodes))

    def leaf_index(self, position: int) -> int | None:
        rows = self._rows("SELECT idx FROM merkle_tree WHERE position = ?", [position])
        return rows[0][0] if rows else None

    def tree_leaves(self, start: int, end: int) -> list[tuple]:
        """(leaf index, position, aggregate id, version, topic, state) of leaves
        [start, end), from the stored events."""
        e = self.position
        return [
            (r[0], r[1], UUID(bytes=_id_bytes(r[2])), r[3], r[4], _bytes(r[5]))
            for r in self._rows(
                f"SELECT t.idx, e.{e}, e.originator_id, e.originator_version, e.topic, "
                f"e.state FROM merkle_tree t JOIN {self.events_table_name} e "
                f"ON e.{e} = t.position WHERE t.level = 0 AND t.idx >= ? AND t.idx < ? "
                "ORDER BY t.idx", [start, end],
            )
        ]


def _id_bytes(value: Any) -> bytes:
    return (value if isinstance(value, UUID) else UUID(str(value))).bytes


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
