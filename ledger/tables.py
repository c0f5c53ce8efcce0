"""The ledger's own tables, beside eventsourcing's stored events.

The index (`event_keys`) holds one row per canonical event: its position (primary key), its
`event_id` (unique) and a hash of its content. The chain (`event_chain`, see
`ledger.chain`) holds one link per stored event, and the Merkle tree (`merkle_tree`, see
`ledger.merkle`, its statements in `ledger.treestore`) one leaf per stored event and the
nodes completed over them. All three are written by the recorder in the same transaction
as the stored events, so the database itself makes ingest idempotent: two writers
recording one event collide on the key and exactly one commits. Rows of every table are
only ever inserted (an index of an earlier layout is laid out again once, by
`LedgerQueries.upgrade_index`). The statements are written once, in SQLite's dialect;
`ledger.postgres` adapts them.
"""

from __future__ import annotations

from ledger.treestore import TREE_DDL

LEDGER_TABLES = ("event_keys", "event_chain", "merkle_tree")
IMMUTABLE = "revledger: recorded events are never updated or deleted"


def event_keys_table(name: str) -> str:
    """The index refers to each event by its position: joined to the events on their
    primary key, and a customer's index entries are small and in recorded order."""
    return (f"CREATE TABLE IF NOT EXISTS {name} (position INTEGER PRIMARY KEY, "
            "event_id TEXT NOT NULL UNIQUE, content_sha256 TEXT NOT NULL, type TEXT NOT NULL, "
            "customer_id TEXT, subscription_id TEXT, voids TEXT)")


LEDGER_DDL = [
    event_keys_table("event_keys"),
    "CREATE INDEX IF NOT EXISTS event_keys_customer ON event_keys (customer_id, position)",
    # At most one void per event, enforced by the database for concurrent writers.
    "CREATE UNIQUE INDEX IF NOT EXISTS event_keys_voids ON event_keys (voids) "
    "WHERE voids IS NOT NULL",
    # One link per stored event (see ledger.chain), in position order.
    "CREATE TABLE IF NOT EXISTS event_chain (position INTEGER PRIMARY KEY, "
    "recorded_at TEXT NOT NULL, chain_sha256 TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS event_chain_recorded ON event_chain (recorded_at)",
    # The Merkle tree over the events (see ledger.merkle, ledger.treestore).
    *TREE_DDL,
]
