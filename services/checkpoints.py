"""Signed checkpoints of the ledger's Merkle tree, and the proofs that go with them.

A checkpoint (C2SP tlog-checkpoint) is a signed note whose text is three lines: the
ledger's origin, the tree size (events covered) and the base64 root hash. The origin names
the ledger: `revledger/` and the first 32 hex digits of its first leaf's hash (the event
that opened the ledger, stamped with its creation instant), so a checkpoint of another
ledger never passes for this one's. Proofs are JSON files (formats in docs/audit.md);
`revledger_verify` checks them without the database.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson

import revledger_verify as offline
from ledger import merkle
from ledger.chain import Link
from ledger.recorder import LedgerRecorder
from services.errors import LedgerError
from services.ledger import known_head, open_ledger

CONSISTENCY = "revledger/consistency-proof/v1"
INCLUSION = "revledger/inclusion-proof/v1"
SLICE = "revledger/event-slice/v1"


def origin_of(first_leaf: bytes) -> str:
    return f"revledger/{first_leaf.hex()[:32]}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ledger_origin(recorder: LedgerRecorder) -> str:
    if recorder.tree_size() == 0:
        raise LedgerError("the ledger is empty: there is no tree to sign yet")
    return origin_of(recorder.tree_compute(lambda nodes: nodes((0, 0))))


def tree_fields(recorder: LedgerRecorder, head: Link | None) -> dict[str, Any]:
    """The tree an answer reflects, for its manifest: the events up to `head`. A
    checkpoint of the same size names the same root."""
    size = recorder.tree_size(upto=head.position) if head else 0
    return {"size": size, "root": _b64(recorder.tree_root(size))}


def keygen(name: str, prefix: str) -> tuple[Path, Path, str]:
    """A new Ed25519 key: `PREFIX.key` (private, mode 0600) and `PREFIX.pub` (the
    verifier key to hand to auditors). Refuses to overwrite a key."""
    from services.notes import new_key  # loads cryptography: only where keys are used

    key = new_key(name)
    private, public = Path(prefix + ".key"), Path(prefix + ".pub")
    for path in (private, public):
        if path.exists():
            raise LedgerError(f"{path} exists: a key is never overwritten")
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key.private_text() + "\n")
        public.write_text(key.verifier() + "\n")
    except OSError as exc:
        raise LedgerError(f"cannot write the key: {exc.strerror}: {exc.filename}") from None
    return private, public, key.verifier()


def checkpoint(url: str, key_text: str, known_at: str | None = None) -> str:
    """The signed checkpoint of the tree (as known at `known_at`, if given)."""
    from services.notes import read_key

    key = read_key(key_text)
    with open_ledger(url) as app:
        recorder = app.ledger_recorder
        head, upto = known_head(app, known_at)
        size = recorder.tree_size(upto=upto) if head else 0
        if size == 0:
            raise LedgerError("no events recorded" + (f" by {known_at}" if known_at else "")
                              + ": there is no tree to sign")
        body = f"{ledger_origin(recorder)}\n{size}\n{_b64(recorder.tree_root(size))}\n"
    return key.sign(body)


def read_checkpoint(text: str) -> offline.Checkpoint:
    """A checkpoint's claims (unchecked signature: proofs are checked by the verifier)."""
    body, sep, _ = text.rpartition("\n\n")
    try:
        if not sep:
            raise offline.VerificationError("no signature")
        return offline.parse_checkpoint(body + "\n")
    except offline.VerificationError as exc:
        raise LedgerError(f"not a checkpoint: {exc}") from None


def _held(recorder: LedgerRecorder, signed: offline.Checkpoint) -> None:
    """The ledger still holds the tree the checkpoint signed, or one line saying not."""
    origin = ledger_origin(recorder)
    if signed.origin != origin:
        raise LedgerError(f"the checkpoint is of another ledger ({signed.origin}; this is "
                          f"{origin})")
    size = recorder.tree_size()
    if size < signed.size:
        raise LedgerError(f"the ledger's tree has {size} leaves, the checkpoint signed "
                          f"{signed.size}: run `revledger verify --checkpoint`")
    if recorder.tree_root(signed.size) != signed.root:
        raise LedgerError(f"the ledger's tree of {signed.size} leaves is not the one the "
                          "checkpoint signed: run `revledger verify --checkpoint`")


def prove_consistency(url: str, old_text: str, new_text: str | None = None) -> dict[str, Any]:
    """The proof that the old checkpoint's tree is a prefix of the new one's (or of the
    current tree, whose root is then not signed)."""
    old = read_checkpoint(old_text)
    new = read_checkpoint(new_text) if new_text else None
    with open_ledger(url) as app:
        recorder = app.ledger_recorder
        _held(recorder, old)
        if new is not None:
            _held(recorder, new)
        size = new.size if new else recorder.tree_size()
        if size < old.size:
            raise LedgerError(f"the new checkpoint ({size} leaves) is older than the old "
                              f"one ({old.size})")
        path = recorder.tree_compute(lambda nodes: merkle.consistency_proof(old.size, size,
                                                                            nodes))
        root = recorder.tree_root(size)
    return {"format": CONSISTENCY, "origin": old.origin, "old_size": old.size,
            "old_root": _b64(old.root), "new_size": size, "new_root": _b64(root),
            "proof": [_b64(h) for h in path]}


def _exported(leaf: tuple) -> dict[str, Any]:
    _, position, aggregate, version, topic, state = leaf
    try:
        event_id = orjson.loads(state).get("event_id")
    except (orjson.JSONDecodeError, AttributeError):
        event_id = None
    return {"position": position, "event_id": event_id, "originator_id": str(aggregate),
            "originator_version": version, "topic": topic, "state": _b64(state)}


def prove_inclusion(url: str, event_id: str, checkpoint_text: str) -> dict[str, Any]:
    """The event as stored, and the proof that it is a leaf of the checkpoint's tree."""
    signed = read_checkpoint(checkpoint_text)
    with open_ledger(url) as app:
        recorder = app.ledger_recorder
        _held(recorder, signed)
        keys = recorder.select_keys_where({"event_id": [event_id]})
        if not keys:
            raise LedgerError(f"the ledger holds no event {event_id!r}")
        index = recorder.leaf_index(keys[0].position)
        if index is None or index >= signed.size:
            raise LedgerError(f"event {event_id} was recorded after the checkpoint (which "
                              f"covers {signed.size} events): sign a newer one")
        path = recorder.tree_compute(lambda nodes: merkle.inclusion_path(index, signed.size,
                                                                         nodes))
        (leaf,) = recorder.tree_leaves(index, index + 1)
    return {"format": INCLUSION, "origin": signed.origin, "size": signed.size,
            "root": _b64(signed.root), "leaf_index": index, "event": _exported(leaf),
            "proof": [_b64(h) for h in path]}


def export_slice(
    url: str, checkpoint_text: str, first: int | None = None, last: int | None = None
) -> dict[str, Any]:
    """The stored events at positions first..last (all those the checkpoint covers by
    default), with the hashes of the complete subtrees either side of them: enough to
    recompute the checkpoint's root from the events themselves."""
    signed = read_checkpoint(checkpoint_text)
    with open_ledger(url) as app:
        recorder = app.ledger_recorder
        _held(recorder, signed)
        start = recorder.tree_size(upto=first - 1) if first else 0
        end = min(signed.size, recorder.tree_size(upto=last) if last else signed.size)
        if end <= start:
            raise LedgerError("no event of the checkpoint's tree is in that range")
        left = merkle.frontier(start)
        right = _aligned(end, signed.size)
        found = recorder.tree_nodes(set(left) | set(right))
        events = [_exported(leaf) for leaf in recorder.tree_leaves(start, end)]
    return {"format": SLICE, "origin": signed.origin, "size": signed.size,
            "root": _b64(signed.root), "start": start, "events": events,
            "left": [_b64(found[k]) for k in left], "right": [_b64(found[k]) for k in right]}


def _aligned(start: int, size: int) -> list[merkle.Key]:
    """The largest complete subtrees covering leaves [start, size), in order."""
    keys = []
    while start < size:
        level = (start & -start).bit_length() - 1 if start else size.bit_length()
        while start + (1 << level) > size:
            level -= 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def write_json(doc: dict[str, Any], out: str) -> None:
    try:
        Path(out).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise LedgerError(f"cannot write {out}: {exc.strerror}") from None
