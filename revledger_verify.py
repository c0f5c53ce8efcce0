"""revledger_verify: check a revledger's signed checkpoints and proofs offline.

One self-contained module: no database, no revledger, nothing but Python 3.11+ (Ed25519
signatures are checked with the `cryptography` package if it is installed, else in plain
Python after RFC 8032). Copy this file next to the files to check:

    python -m revledger_verify checkpoint LEDGER.checkpoint --key KEY.pub
    python -m revledger_verify consistency PROOF.json --old OLD.checkpoint \
        --new NEW.checkpoint --key KEY.pub
    python -m revledger_verify inclusion PROOF.json --checkpoint C.checkpoint --key KEY.pub
    python -m revledger_verify slice SLICE.json --checkpoint C.checkpoint --key KEY.pub

Each prints one line and exits 0 if the check holds, 1 if not. It is written from the
specifications, not from revledger's code, so that it checks the ledger rather than
agreeing with it:

- the tree and the proofs: RFC 9162 §2.1 (leaf = SHA-256(0x00 || bytes), node =
  SHA-256(0x01 || left || right)); the proofs are verified with the algorithms of
  §2.1.3.2 (inclusion) and §2.1.4.2 (consistency);
- checkpoints: C2SP tlog-checkpoint (origin, tree size, base64 root hash), in a C2SP
  signed note with an Ed25519 signature (key id = SHA-256(name || 0x0A || 0x01 ||
  public key)[:4]; verifier key `name+hexid+base64(0x01 || public key)`);
- a leaf's bytes: the stored event's position (8 bytes, big-endian, signed), 16 (8
  bytes), the aggregate id (16 bytes), the version (8 bytes, signed), the topic's length
  (8 bytes) and UTF-8 topic, the state's length (8 bytes) and the state as stored.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Checkpoint", "Range", "VerificationError", "check_consistency", "check_inclusion",
    "check_slice", "ed25519_verify", "event_leaf", "hash_children", "hash_leaf",
    "read_checkpoint", "root_of_leaves", "stored_leaf", "verify_consistency",
    "verify_inclusion", "verify_note",
]

HASH_SIZE = 32  # SHA-256
ED25519 = 0x01  # the signed-note signature type of Ed25519
SIGNATURE_DASH = "\u2014 "  # an em dash and a space start each signature line


class VerificationError(Exception):
    """A check that does not hold; the message says which and why."""


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- RFC 9162 §2.1.3.2 and §2.1.4.2 ------------------------------------------------------


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """Whether `path` proves that `leaf` is leaf `index` of the tree of `size` leaves
    whose root is `root` (RFC 9162 §2.1.3.2, step by step)."""
    if index >= size or index < 0 or len(leaf) != HASH_SIZE:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, path: list[bytes], first_hash: bytes, second_hash: bytes
) -> bool:
    """Whether `path` proves the tree of `first` leaves (root `first_hash`) is a prefix of
    the tree of `second` leaves (root `second_hash`): RFC 9162 §2.1.4.2. Two equal sizes
    need an empty path and equal roots; a proof from the empty tree proves nothing."""
    if first <= 0 or second < first:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = hash_children(c, fr), hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


def root_of_leaves(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) by its definition (RFC 9162 §2.1.1): the list split at the largest power
    of two smaller than its length."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << (len(leaves) - 1).bit_length() - 1
    return hash_children(root_of_leaves(leaves[:k]), root_of_leaves(leaves[k:]))


class Range:
    """Complete subtrees covering [0, end), the largest first, grown one subtree at a time
    (a compact range): the root of all leaves so far is their hashes folded from the
    right. Used to check a slice of leaves with the hashes either side of it."""

    def __init__(self) -> None:
        self.end = 0
        self.parts: list[tuple[int, bytes]] = []  # (width, hash)

    def add(self, width: int, digest: bytes) -> None:
        if width & (width - 1) or self.end % width:
            raise VerificationError(f"a subtree of {width} leaves cannot start at {self.end}")
        self.end += width
        while self.parts and self.parts[-1][0] == width:
            width, digest = width * 2, hash_children(self.parts.pop()[1], digest)
        if self.parts and self.parts[-1][0] < width:
            raise VerificationError("the hashes beside the slice do not fit its tree")
        self.parts.append((width, digest))

    def root(self) -> bytes:
        if not self.parts:
            return hashlib.sha256(b"").digest()
        digest = self.parts[-1][1]
        for _, left in reversed(self.parts[:-1]):
            digest = hash_children(left, digest)
        return digest


def _widths_left(end: int) -> list[int]:
    """Widths of the complete subtrees covering [0, end), largest first."""
    return [1 << b for b in range(end.bit_length() - 1, -1, -1) if end >> b & 1]


def _widths_right(start: int, size: int) -> list[int]:
    """Widths of the largest aligned complete subtrees covering [start, size), in order."""
    widths = []
    while start < size:
        width = start & -start if start else 1 << (size.bit_length())
        while start + width > size:
            width >>= 1
        widths.append(width)
        start += width
    return widths


# --- leaves: the ledger's stored events ---------------------------------------------------


def stored_leaf(position: int, aggregate_id: bytes, version: int, topic: str,
                state: bytes) -> bytes:
    """The leaf hash of a stored event, from its stored fields."""
    encoded = topic.encode()
    return hash_leaf(b"".join((
        struct.pack(">qQ", position, len(aggregate_id)), aggregate_id,
        struct.pack(">qQ", version, len(encoded)), encoded, struct.pack(">Q", len(state)), state,
    )))


def event_leaf(event: dict[str, Any]) -> bytes:
    """The leaf hash of an exported stored event (`position`, `originator_id`,
    `originator_version`, `topic`, `state` in base64)."""
    try:
        return stored_leaf(event["position"], uuid.UUID(event["originator_id"]).bytes,
                           event["originator_version"], event["topic"],
                           base64.b64decode(event["state"], validate=True))
    except (KeyError, TypeError, ValueError, AttributeError, struct.error,
            binascii.Error) as exc:
        raise VerificationError(f"an exported event is malformed: {exc}") from None


# --- C2SP signed notes and checkpoints ----------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()
    key_name: str = ""


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not base64") from None


def parse_verifier_key(text: str) -> tuple[str, bytes, bytes]:
    """(name, key id, public key) of a verifier key `name+hexid+base64(0x01||key)`,
    checking the id against the name and key."""
    parts = text.strip().split("+", 2)  # the base64 key may hold '+' itself
    if len(parts) != 3:
        raise VerificationError("a verifier key is name+keyid+base64key")
    name, hex_id, encoded = parts
    key = _b64(encoded, "the verifier key")
    if len(key) != 33 or key[0] != ED25519:
        raise VerificationError("the verifier key is not an Ed25519 key")
    key_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if hex_id.lower() != key_id.hex():
        raise VerificationError("the verifier key's id does not match its name and key")
    return name, key_id, key[1:]


def verify_note(note: str, verifier_key: str) -> str:
    """The text of a signed note carrying a valid signature by this key (C2SP signed-note);
    else VerificationError."""
    name, key_id, public = parse_verifier_key(verifier_key)
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not note.endswith("\n"):
        raise VerificationError("not a signed note (no blank line before signatures)")
    text += "\n"
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_DASH):
            raise VerificationError(f"malformed signature line: {line[:40]!r}")
        signer, _, encoded = line[len(SIGNATURE_DASH):].rpartition(" ")
        blob = _b64(encoded, "a signature")
        if signer == name and blob[:4] == key_id:
            if _ed25519_valid(public, blob[4:], text.encode()):
                return text
            raise VerificationError(f"the signature of {name} does not verify: the note was "
                                    "altered, or signed by another key of that name")
    raise VerificationError(f"the note carries no signature by the key {name}")


def _ed25519_valid(public: bytes, signature: bytes, message: bytes) -> bool:
    """With the `cryptography` package if it is installed, else in plain Python."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return ed25519_verify(public, signature, message)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# Ed25519 verification in plain Python, after RFC 8032 §6 (slow, a few ms, and not
# constant-time, which checking a public signature does not need): the verifier then
# runs with nothing but Python.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_Q = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c, d = 2 * a[3] * b[3] * _D % _P, 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return e * f, g * h, f * g, e * h


def _mul(s: int, point: _Point) -> _Point:
    out: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            out = _add(out, point)
        point, s = _add(point, point), s >> 1
    return out


def _x_of(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


def _decompress(data: bytes) -> _Point | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _x_of(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_G: _Point = (_x_of(_GY, 0) or 0, _GY, 1, (_x_of(_GY, 0) or 0) * _GY % _P)


def ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """RFC 8032 §5.1.7: whether `signature` is `public`'s signature of `message`."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _decompress(public), _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(),
                       "little") % _Q
    left, right = _mul(s, _G), _add(r, _mul(h, a))
    return ((left[0] * right[2] - right[0] * left[2]) % _P == 0
            and (left[1] * right[2] - right[1] * left[2]) % _P == 0)


def parse_checkpoint(text: str) -> Checkpoint:
    """A checkpoint's body: origin, tree size (decimal), base64 root, extension lines."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerificationError("a checkpoint has an origin, a size and a root, one a line")
    origin, size, root, *extensions = lines[:-1]
    if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise VerificationError("the checkpoint's origin or tree size is malformed")
    digest = _b64(root, "the checkpoint's root hash")
    if len(digest) != 32:
        raise VerificationError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size), digest, tuple(extensions))


def read_checkpoint(path: str | Path, verifier_key: str) -> Checkpoint:
    note = Path(path).read_text(encoding="utf-8")
    checkpoint = parse_checkpoint(verify_note(note, verifier_key))
    return Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root,
                      checkpoint.extensions, verifier_key.split("+")[0])


# --- the checks of proof files ------------------------------------------------------------


def _same_tree(doc: dict[str, Any], prefix: str, checkpoint: Checkpoint) -> None:
    if doc.get("origin") != checkpoint.origin:
        raise VerificationError(f"the file is about {doc.get('origin')!r}, the checkpoint "
                                f"about {checkpoint.origin!r}: another ledger")
    size, root = doc.get(f"{prefix}size"), doc.get(f"{prefix}root")
    if size != checkpoint.size or root != base64.b64encode(checkpoint.root).decode():
        raise VerificationError(f"the file's tree ({size} leaves) is not the checkpoint's "
                                f"({checkpoint.size} leaves, its root)")


def _hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise VerificationError("a proof is a list of base64 hashes")
    return [_b64(v, "a proof hash") if isinstance(v, str) else b"" for v in values]


def check_consistency(doc: dict[str, Any], old: Checkpoint, new: Checkpoint) -> str:
    _same_tree(doc, "old_", old)
    _same_tree(doc, "new_", new)
    if not verify_consistency(old.size, new.size, _hashes(doc.get("proof")), old.root,
                              new.root):
        raise VerificationError(f"the tree of {new.size} leaves does not extend the tree of "
                                f"{old.size} leaves: events were removed or rewritten")
    return f"consistent: the tree of {old.size} leaves is a prefix of the tree of {new.size}"


def check_inclusion(doc: dict[str, Any], checkpoint: Checkpoint) -> str:
    _same_tree(doc, "", checkpoint)
    event = doc.get("event")
    if not isinstance(event, dict):
        raise VerificationError("an inclusion proof carries its event, an object")
    index = doc.get("leaf_index")
    if not isinstance(index, int) or not verify_inclusion(
        index, checkpoint.size, event_leaf(event), _hashes(doc.get("proof")), checkpoint.root
    ):
        raise VerificationError(f"the event is not leaf {index} of the checkpoint's tree")
    return (f"included: the event at position {event.get('position')} is leaf {index} of "
            f"the tree of {checkpoint.size} leaves")


def check_slice(doc: dict[str, Any], checkpoint: Checkpoint) -> str:
    """The slice's events are exactly leaves [start, start + len) of the checkpoint's
    tree: their hashes, with the complete subtrees left and right of them, make its root."""
    _same_tree(doc, "", checkpoint)
    start, events = doc.get("start"), doc.get("events")
    if not isinstance(start, int) or not isinstance(events, list) or start < 0:
        raise VerificationError("a slice has a start and a list of events")
    end = start + len(events)
    left, right = _hashes(doc.get("left")), _hashes(doc.get("right"))
    widths_left, widths_right = _widths_left(start), _widths_right(end, checkpoint.size)
    if end > checkpoint.size or (len(left), len(right)) != (len(widths_left),
                                                            len(widths_right)):
        raise VerificationError("the slice does not fit the checkpoint's tree size")
    tree = Range()
    for width, digest in zip(widths_left, left, strict=True):
        tree.add(width, digest)
    previous = None
    for event in events:
        if not isinstance(event, dict):
            raise VerificationError("a slice's events are objects")
        position = event.get("position")
        if previous is not None and (not isinstance(position, int) or position <= previous):
            raise VerificationError("the slice's events are not in position order")
        previous = position
        tree.add(1, event_leaf(event))
    for width, digest in zip(widths_right, right, strict=True):
        tree.add(width, digest)
    if tree.root() != checkpoint.root:
        raise VerificationError("the slice's events do not make the checkpoint's root: one "
                                "was altered, added, removed or moved")
    return f"slice verified: leaves {start}..{end - 1} of the tree of {checkpoint.size} leaves"


# --- command line -------------------------------------------------------------------------


def _load(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise VerificationError(f"{path} is not a revledger proof file")
    return doc


def run(argv: list[str]) -> str:
    """The check the arguments name; its one-line outcome, or VerificationError."""
    parser = argparse.ArgumentParser(prog="revledger_verify", description=__doc__.split(
        "\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    for name in ("checkpoint", "consistency", "inclusion", "slice"):
        p = sub.add_parser(name)
        p.add_argument("file")
        p.add_argument("--key", required=True, help="the verifier key, or a file holding it")
        if name == "consistency":
            p.add_argument("--old", required=True)
            p.add_argument("--new", required=True)
        elif name != "checkpoint":
            p.add_argument("--checkpoint", required=True)
    args = parser.parse_args(argv)
    key = Path(args.key).read_text().strip() if Path(args.key).is_file() else args.key
    try:
        if args.check == "checkpoint":
            c = read_checkpoint(args.file, key)
            return (f"checkpoint signed by {c.key_name}: {c.origin}, {c.size} leaves, root "
                    f"{base64.b64encode(c.root).decode()}")
        if args.check == "consistency":
            return check_consistency(_load(args.file), read_checkpoint(args.old, key),
                                     read_checkpoint(args.new, key))
        checkpoint = read_checkpoint(args.checkpoint, key)
        if args.check == "inclusion":
            return check_inclusion(_load(args.file), checkpoint)
        return check_slice(_load(args.file), checkpoint)
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationError(f"cannot read: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
