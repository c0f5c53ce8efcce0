"""`verify`'s check of the Merkle tree: recomputed from the stored events with the offline
verifier's code (`revledger_verify`, written from RFC 9162, not the ledger's tree code),
held to the stored tree and, given a signed checkpoint, to the tree it signed."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import revledger_verify as offline
from ledger.recorder import LedgerRecorder
from services.checkpoints import origin_of


@dataclass(frozen=True)
class TreeReport:
    """What the tree check found: the leaves recomputed, the root they make, and the
    checkpoint's outcome if one was given."""

    leaves: int = 0
    root: str = ""  # base64
    problem: str | None = None
    checkpoint_size: int | None = None  # proven: the ledger holds the tree it signed
    unproven: int = 0  # events after the checkpoint


def check_tree(
    recorder: LedgerRecorder, checkpoint: str | None = None, key: str | None = None
) -> TreeReport:
    """Recompute the root over every chained event; compare it with the stored tree's, and
    the root at the checkpoint's size with the checkpoint's (signature checked first)."""
    signed = None
    if checkpoint is not None:
        try:
            signed = offline.parse_checkpoint(offline.verify_note(checkpoint, key or ""))
        except offline.VerificationError as exc:
            return TreeReport(problem=f"checkpoint: {exc}")
    leaves, at_checkpoint, first = _recompute(recorder.iter_chain(),
                                              signed.size if signed else None)
    root = leaves.root()
    report = TreeReport(leaves.end, _b64(root))
    problem = _stored_problem(recorder, leaves.end, root)
    if problem is None and signed is not None:
        problem = _checkpoint_problem(signed, leaves.end, at_checkpoint, first)
    if problem is not None:
        return TreeReport(report.leaves, report.root, problem)
    if signed is None:
        return report
    return TreeReport(report.leaves, report.root, None, signed.size, leaves.end - signed.size)


def _recompute(
    rows: Iterable[tuple], size: int | None
) -> tuple[offline.Range, bytes | None, bytes | None]:
    """The leaves of the chained events; the root once `size` of them were added, and the
    first leaf (which names the ledger)."""
    tree, at_size, first = offline.Range(), None, None
    for position, originator_id, version, topic, state, at_position, *_ in rows:
        if position is None or at_position is None:
            continue  # not chained: the chain check reports it
        aggregate = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        leaf = offline.stored_leaf(position, aggregate.bytes, version, topic, state)
        first = first or leaf
        tree.add(1, leaf)
        if tree.end == size:
            at_size = tree.root()
    return tree, at_size, first


def _stored_problem(recorder: LedgerRecorder, leaves: int, root: bytes) -> str | None:
    stored = recorder.tree_size()
    if stored != leaves:
        return (f"the Merkle tree has {stored} leaves but {leaves} events are chained: "
                "events or leaves were written or removed around the ledger")
    try:
        if recorder.tree_root(stored) != root:
            return ("the Merkle tree's root differs from the root of the events: its "
                    "nodes were altered")
    except LookupError as exc:
        return str(exc)
    return None


def _checkpoint_problem(
    signed: offline.Checkpoint, leaves: int, at_size: bytes | None, first: bytes | None
) -> str | None:
    origin = origin_of(first) if first else None
    if signed.origin != origin:
        return (f"the checkpoint is of another ledger ({signed.origin}; this one is "
                f"{origin})")
    if leaves < signed.size:
        return (f"the ledger holds {leaves} events, the checkpoint signed {signed.size}: "
                "events were cut from its end")
    if at_size != signed.root:
        return (f"the first {signed.size} events are not those the checkpoint signed: "
                "some were altered, removed, inserted or moved")
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
