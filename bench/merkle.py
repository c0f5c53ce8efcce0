"""The Merkle tree's cost and its proofs' size, measured.

1. Ingest with and without the tree, same feed, same run, alternating (SQLite, and
   PostgreSQL with --pg): the code without the tree is a checkout of the commit the tree
   was added on (--baseline DIR, e.g. `git archive <base> | tar -x -C DIR`), next to the
   machine's yardstick (bench/reference.py).
2. On the ledger ingested with the tree: inclusion and consistency proofs for random
   leaves and sizes (hashes, bytes, time to make from the stored nodes and to check with
   revledger_verify), and `verify`'s recompute of the root from the events.
3. With --synthetic N: the tree alone, N leaves appended in transactions of 5,000 to the
   ledger's `merkle_tree` table in a SQLite file by the ledger's own append, and the same
   proofs from it (what proofs cost at a size too large to ingest here).

    .venv/bin/python bench/merkle.py --customers 20000 --baseline /tmp/merkle-base [--pg URL]
    .venv/bin/python bench/merkle.py --synthetic 1000000
"""

from __future__ import annotations

import base64
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import revledger_verify as offline  # noqa: E402
from bench.run import CLI_ENV, _reference, _reset_pg, feed_for  # noqa: E402
from ledger import merkle  # noqa: E402
from ledger.treestore import TREE_DDL, TreeQueries  # noqa: E402


def ingest(code: Path, db: str, feed: Path) -> tuple[float, int]:
    """(seconds, events accepted) of `revledger ingest` run from the code at `code`."""
    env = {**CLI_ENV, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cli", "--db", db, "ingest", str(feed)],
                         cwd=code, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    accepted = int(out.stderr.split("accepted ")[1].split(",")[0])
    return seconds, accepted


def ingest_rates(baseline: Path, feed: Path, make_db, rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"without the tree": [], "with the tree": []}
    for _ in range(rounds):
        for name, code in (("without the tree", baseline), ("with the tree", ROOT)):
            seconds, events = ingest(code, make_db(), feed)
            rates[name].append(events / seconds)
    return rates


def proofs(db: str, samples: int) -> None:
    from ledger.application import LedgerApplication
    from services.tree_check import check_tree

    app = LedgerApplication(db)
    recorder = app.ledger_recorder

    def leaf_of(index: int) -> bytes:
        (leaf,) = recorder.tree_leaves(index, index + 1)
        return offline.stored_leaf(leaf[1], leaf[2].bytes, leaf[3], leaf[4], leaf[5])

    root = sample_proofs(recorder, leaf_of, samples)
    started = time.perf_counter()
    report = check_tree(recorder)
    assert report.problem is None and report.root == base64.b64encode(root).decode()
    print(f"verify's recompute of the root from all {recorder.tree_size()} events: "
          f"{time.perf_counter() - started:.2f} s")
    app.close()


def sample_proofs(recorder: Any, leaf_of: Any, samples: int) -> bytes:
    """Proofs for random leaves and old sizes, made from the stored nodes and checked by
    revledger_verify; the root of the whole tree."""
    size = recorder.tree_size()
    rng = random.Random(7)
    root = recorder.tree_root(size)
    print(f"\ntree of {size} leaves")
    made, checked, lengths = [], [], []
    for _ in range(samples):
        index = rng.randrange(size)
        started = time.perf_counter()
        path = recorder.tree_compute(lambda n, i=index: merkle.inclusion_path(i, size, n))
        made.append(time.perf_counter() - started)
        leaf_hash = leaf_of(index)
        started = time.perf_counter()
        assert offline.verify_inclusion(index, size, leaf_hash, path, root)
        checked.append(time.perf_counter() - started)
        lengths.append(len(path))
    _report("inclusion", lengths, made, checked)
    made, checked, lengths = [], [], []
    for _ in range(samples):
        old = rng.randrange(1, size)
        started = time.perf_counter()
        path = recorder.tree_compute(lambda n, o=old: merkle.consistency_proof(o, size, n))
        old_root = recorder.tree_root(old)
        made.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert offline.verify_consistency(old, size, path, old_root, root)
        checked.append(time.perf_counter() - started)
        lengths.append(len(path))
    _report("consistency", lengths, made, checked)
    return root


class _TreeFile(TreeQueries):
    """The ledger's tree table in a SQLite file of its own, read as the recorder reads it."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)
        for statement in TREE_DDL:
            self.conn.execute(statement)

    def _rows(self, statement: str, params: Any) -> list[tuple]:
        return self.conn.execute(statement, params).fetchall()


def synthetic(leaves: int, samples: int) -> None:
    """N leaves appended in transactions of 5,000 by the ledger's append and insert."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = _TreeFile(f"{tmp}/tree.db")
        data = [merkle.leaf_hash(b"%d" % i) for i in range(leaves)]
        started = time.perf_counter()
        for at in range(0, leaves, 5000):
            with tree.conn:
                c = tree.conn.cursor()
                size = at
                keys = merkle.frontier(size)
                found = tree._nodes_on(c, keys) if keys else {}
                rows = [(level, idx, idx + 1 if level == 0 else None, digest.hex())
                        for level, idx, digest in merkle.append(
                            size, [found[k] for k in keys], data[at:at + 5000])]
                c.executemany("INSERT INTO merkle_tree VALUES (?, ?, ?, ?)", rows)
        seconds = time.perf_counter() - started
        print(f"synthetic: {leaves} leaves appended in {seconds:.1f} s "
              f"({leaves / seconds:,.0f} leaves/s, the tree's work alone)")
        sample_proofs(tree, lambda i: data[i], samples)


def _report(kind: str, lengths: list[int], made: list[float], checked: list[float]) -> None:
    print(f"{kind} proofs: {min(lengths)}-{max(lengths)} hashes "
          f"({max(lengths) * 44} bytes of base64 at most); made in "
          f"{statistics.median(made) * 1000:.2f} ms (median), checked in "
          f"{statistics.median(checked) * 1e6:.0f} µs (median)")


@click.command()
@click.option("--customers", type=int, default=20_000, show_default=True)
@click.option("--baseline", type=click.Path(exists=True, file_okay=False),
              help="A checkout of the code without the tree.")
@click.option("--synthetic", "synthetic_leaves", type=int, default=None,
              help="Only measure the tree alone at this many leaves.")
@click.option("--rounds", type=int, default=2, show_default=True)
@click.option("--samples", type=int, default=200, show_default=True)
@click.option("--pg", help="Also measure on this PostgreSQL database (it is emptied).")
def main(customers: int, baseline: str | None, synthetic_leaves: int | None, rounds: int,
         samples: int, pg: str | None) -> None:
    os.environ.pop("REVLEDGER_DB", None)
    if synthetic_leaves:
        synthetic(synthetic_leaves, samples)
        return
    if baseline is None:
        raise click.UsageError("--baseline is needed to compare ingest")
    feed = feed_for(customers)
    base = Path(baseline)
    with tempfile.TemporaryDirectory() as tmp:
        made: list[str] = []

        def sqlite_db() -> str:
            made.append(f"sqlite:///{tmp}/l{len(made)}.db")
            return made[-1]

        print(f"yardstick: {_reference():,.0f} events/s (eventsourcing alone)")
        stores = [("sqlite", sqlite_db)]
        if pg:
            stores.append(("postgresql", lambda: (_reset_pg(pg), pg)[1]))
        for store, make_db in stores:
            rates = ingest_rates(base, feed, make_db, rounds)
            for name, values in rates.items():
                print(f"{store} ingest {customers} customers {name}: "
                      f"{', '.join(f'{v:,.0f}' for v in values)} events/s")
        print(f"yardstick: {_reference():,.0f} events/s (eventsourcing alone)")
        proofs(made[-1], samples)


if __name__ == "__main__":
    main()
