"""The ledger as a Merkle tree (RFC 9162 §2.1): hashing, appending, roots and proofs.

Leaf i of the tree is the i-th stored event in position order (leaf 0 the first), and its
hash is `SHA-256(0x00 || canonical bytes)`, the very bytes the hash chain links
(`ledger.chain.canonical_bytes`: position, aggregate id, version, topic, stored state, each
length-prefixed). An inner node is `SHA-256(0x01 || left || right)`.

The store keeps the hash of every *complete* subtree, addressed by (level, index): level 0
holds the leaves, and node (k, i) covers leaves [i·2^k, (i+1)·2^k). Appending a leaf adds it
and each subtree it completes: one new node on average, at most 1 + log2 n. Any root or
proof then needs only O(log n) stored nodes, looked up, never rebuilt: a tree of size n is
its complete subtrees along the binary digits of n, and every subtree a proof names is
either complete or made of complete ones.

Everything here is pure: `nodes` is a mapping from (level, index) to a hash, and the
functions that read it first say which keys they need (`needed_for_*`), so a store can
fetch them in one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

Key = tuple[int, int]  # (level, index) of a complete subtree
Nodes = Mapping[Key, bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty list


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def frontier(size: int) -> list[Key]:
    """The complete subtrees a tree of `size` leaves is made of, left to right: one per
    binary digit of `size` that is 1, the largest first."""
    keys, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def append(
    size: int, frontier_hashes: Sequence[bytes], leaves: Iterable[bytes]
) -> Iterator[tuple[int, int, bytes]]:
    """The nodes (level, index, hash) that appending these leaf hashes to a tree of `size`
    leaves completes, leaves included, given the hashes of `frontier(size)`."""
    stack = [(level, hash_) for (level, _), hash_ in zip(frontier(size), frontier_hashes,
                                                          strict=True)]
    for leaf in leaves:
        yield 0, size, leaf
        level, hash_, index = 0, leaf, size
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            hash_, level, index = node_hash(left, hash_), level + 1, index >> 1
            yield level, index, hash_
        stack.append((level, hash_))
        size += 1


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 9162 splits D[n]."""
    return 1 << (n - 1).bit_length() - 1


def _subtree(start: int, end: int, nodes: Callable[[Key], bytes]) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion produces: `start` is a multiple
    of the largest power of two not above end - start, so the range is one complete
    subtree or a complete left part beside a smaller range of the same kind."""
    width = end - start
    if width & (width - 1) == 0:
        level = width.bit_length() - 1
        return nodes((level, start >> level))
    k = _split(width)
    return node_hash(_subtree(start, start + k, nodes), _subtree(start + k, end, nodes))


def root(size: int, nodes: Callable[[Key], bytes]) -> bytes:
    return EMPTY_ROOT if size == 0 else _subtree(0, size, nodes)


def inclusion_path(index: int, size: int, nodes: Callable[[Key], bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, for leaf `index` in a tree of `size` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _path(index, 0, size, nodes)


def _path(m: int, start: int, end: int, nodes: Callable[[Key], bytes]) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, start, start + k, nodes), _subtree(start + k, end, nodes)]
    return [*_path(m - k, start + k, end, nodes), _subtree(start, start + k, nodes)]


def consistency_proof(old: int, new: int, nodes: Callable[[Key], bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: that the tree of `old` leaves is a prefix of
    the tree of `new` leaves. Empty when old is 0 or old == new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} to {new} leaves")
    if old in (0, new):
        return []
    return _subproof(old, 0, new, True, nodes)


def _subproof(
    m: int, start: int, end: int, whole: bool, nodes: Callable[[Key], bytes]
) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [_subtree(start, end, nodes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, start, start + k, whole, nodes), _subtree(start + k, end, nodes)]
    return [*_subproof(m - k, start + k, end, False, nodes), _subtree(start, start + k, nodes)]


def needed(compute: Callable[[Callable[[Key], bytes]], object]) -> set[Key]:
    """The stored nodes a computation reads: it is run once over a recording stand-in."""
    keys: set[Key] = set()

    def record(key: Key) -> bytes:
        keys.add(key)
        return EMPTY_ROOT

    compute(record)
    return keys


def lookup(found: Nodes) -> Callable[[Key], bytes]:
    """Reading fetched nodes; a missing one means the store lost part of its tree."""

    def get(key: Key) -> bytes:
        try:
            return found[key]
        except KeyError:
            raise LookupError(f"the Merkle tree has no node at level {key[0]}, "
                              f"index {key[1]}") from None

    return get
