"""The Merkle tree and its proofs, without a database: the ledger's tree code
(`ledger.merkle`) and the offline verifier (`revledger_verify`, written apart from it from
RFC 9162) held to published test vectors, to a second implementation (pymerkle, a test
oracle only) and to each other, for every pair of tree sizes up to 64."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import revledger_verify as offline
from ledger import merkle

VECTORS = json.loads((Path(__file__).parent / "vectors" / "transparency_dev_merkle.json")
                     .read_text())

# RFC 6962's test leaves and the roots of the trees of their first n, as transparency-dev/
# merkle publishes them (testonly/constants.go, commit 417fb0c3; the same in
# google/trillian's merkle/testonly).
RFC_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
RFC_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]


def stored_tree(leaves: list[bytes]) -> dict[merkle.Key, bytes]:
    """The nodes the store keeps for these leaf hashes, appended one batch at a time in
    batches of 1, 2, 3, ... leaves (as ingest's transactions append them)."""
    nodes: dict[merkle.Key, bytes] = {}
    size, batch = 0, 1
    while size < len(leaves):
        chunk = leaves[size:size + batch]
        frontier = [nodes[k] for k in merkle.frontier(size)]
        for level, index, digest in merkle.append(size, frontier, chunk):
            assert (level, index) not in nodes  # rows are only ever inserted
            nodes[(level, index)] = digest
        size, batch = size + len(chunk), batch + 1
    return nodes


def leaves_of(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"event %d" % i) for i in range(n)]


TREE_64 = leaves_of(64)
NODES_64 = stored_tree(TREE_64)
GET_64 = merkle.lookup(NODES_64)


def b64(text: str) -> bytes:
    return base64.b64decode(text)


# --- published vectors --------------------------------------------------------------------


def test_the_rfc_6962_leaves_make_the_published_roots_for_every_size():
    hashed = [merkle.leaf_hash(leaf) for leaf in RFC_LEAVES]
    nodes = merkle.lookup(stored_tree(hashed))
    for size, expected in enumerate(RFC_ROOTS):
        assert merkle.root(size, nodes) == expected
        assert offline.root_of_leaves(hashed[:size]) == expected


@pytest.mark.parametrize("name", sorted(n for n in VECTORS["vectors"] if "/inclusion/" in n))
def test_the_verifier_agrees_with_transparency_dev_on_inclusion(name):
    v = VECTORS["vectors"][name]
    holds = offline.verify_inclusion(v["leafIdx"], v["treeSize"], b64(v["leafHash"]),
                                     [b64(p) for p in v["proof"] or []], b64(v["root"]))
    assert holds is not v["wantErr"], v["desc"]


@pytest.mark.parametrize("name", sorted(n for n in VECTORS["vectors"] if "/consistency/" in n))
def test_the_verifier_agrees_with_transparency_dev_on_consistency(name):
    v = VECTORS["vectors"][name]
    holds = offline.verify_consistency(v["size1"], v["size2"],
                                       [b64(p) for p in v["proof"] or []],
                                       b64(v["root1"]), b64(v["root2"]))
    assert holds is not v["wantErr"], v["desc"]


def test_the_ledgers_proofs_are_the_published_ones_for_the_happy_paths():
    hashed = [merkle.leaf_hash(leaf) for leaf in RFC_LEAVES]
    nodes = merkle.lookup(stored_tree(hashed))
    happy = {n: v for n, v in VECTORS["vectors"].items() if n.endswith("happy-path.json")
             and n.startswith(("testdata/inclusion/", "testdata/consistency/"))}
    assert len(happy) > 5
    for v in happy.values():
        if "leafIdx" in v:
            path = merkle.inclusion_path(v["leafIdx"], v["treeSize"], nodes)
        else:
            path = merkle.consistency_proof(v["size1"], v["size2"], nodes)
        assert [base64.b64encode(p).decode() for p in path] == (v["proof"] or [])


# --- a second implementation as oracle ----------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_the_roots_are_pymerkles_for_every_prefix(entries):
    pymerkle = pytest.importorskip("pymerkle")
    oracle = pymerkle.InmemoryTree(algorithm="sha256")  # RFC 9162's 0x00/0x01 prefixes
    hashed = [merkle.leaf_hash(e) for e in entries]
    nodes = merkle.lookup(stored_tree(hashed))
    for size, entry in enumerate(entries, start=1):
        oracle.append_entry(entry)
        assert merkle.root(size, nodes) == oracle.get_root(size)
        assert offline.root_of_leaves(hashed[:size]) == oracle.get_root(size)


# --- every pair of sizes up to 64 ---------------------------------------------------------


def bound(n: int) -> int:
    return 2 * math.ceil(math.log2(n)) if n > 1 else 0


def test_every_inclusion_proof_up_to_64_verifies_and_is_short():
    for size in range(1, 65):
        root = merkle.root(size, GET_64)
        assert root == offline.root_of_leaves(TREE_64[:size])
        for index in range(size):
            path = merkle.inclusion_path(index, size, GET_64)
            assert len(path) <= math.ceil(math.log2(size)) <= bound(size)
            assert offline.verify_inclusion(index, size, TREE_64[index], path, root)
            other = TREE_64[index - 1] if index else merkle.leaf_hash(b"forged")
            assert not offline.verify_inclusion(index, size, other, path, root)
            assert not offline.verify_inclusion(index, size, TREE_64[index], path,
                                                merkle.root(size - 1, GET_64))


def test_every_consistency_proof_up_to_64_verifies_and_is_short():
    roots = [merkle.root(n, GET_64) for n in range(65)]
    for new in range(1, 65):
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(old, new, GET_64)
            assert len(proof) <= bound(new), (old, new)
            assert offline.verify_consistency(old, new, proof, roots[old], roots[new])
            if old < new:
                # a rewritten old tree, or a new tree that dropped or changed a leaf
                assert not offline.verify_consistency(old, new, proof, roots[old - 1] if
                                                      old > 1 else roots[2], roots[new])
                assert not offline.verify_consistency(old, new, proof, roots[old],
                                                      roots[new - 1])


def test_a_proof_from_a_rewritten_tree_fails():
    rewritten = list(TREE_64)
    rewritten[5] = merkle.leaf_hash(b"rewritten")
    get = merkle.lookup(stored_tree(rewritten))
    for old, new in ((8, 64), (6, 9), (33, 40)):
        proof = merkle.consistency_proof(old, new, get)
        assert not offline.verify_consistency(old, new, proof, merkle.root(old, GET_64),
                                              merkle.root(new, get))


def test_appending_costs_at_most_log_n_nodes_per_leaf_and_two_on_average():
    added = [len(list(merkle.append(n, [NODES_64[k] for k in merkle.frontier(n)],
                                    [TREE_64[n]]))) for n in range(64)]
    assert max(added) == 1 + 6 and sum(added) <= 2 * len(added)


def test_a_proof_reads_log_n_stored_nodes():
    for size in (7, 33, 64):
        for index in (0, size // 2, size - 1):
            keys = merkle.needed(lambda nodes, i=index, s=size: merkle.inclusion_path(i, s,
                                                                                   nodes))
            assert len(keys) <= 2 * math.ceil(math.log2(size))


def test_the_slice_check_rebuilds_the_root_from_any_run_of_leaves():
    for size in (1, 5, 13, 64):
        root = merkle.root(size, GET_64)
        for start in range(size):
            for end in range(start + 1, size + 1):
                tree = offline.Range()
                for key in merkle.frontier(start):
                    tree.add(1 << key[0], NODES_64[key])
                for leaf in TREE_64[start:end]:
                    tree.add(1, leaf)
                for width in offline._widths_right(end, size):
                    tree.add(width, NODES_64[(width.bit_length() - 1, tree.end // width)])
                assert tree.root() == root, (size, start, end)


def test_the_empty_tree_has_the_hash_of_nothing():
    assert merkle.root(0, GET_64) == hashlib.sha256(b"").digest() == offline.root_of_leaves([])


# --- Ed25519 without the cryptography package -------------------------------------------

# RFC 8032 §7.1, TEST 1 and TEST 2.
RFC_8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
     "701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f36"
     "13d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]


@pytest.mark.parametrize(("public", "message", "signature"), RFC_8032)
def test_the_plain_python_ed25519_check_accepts_rfc_8032s_signatures(public, message,
                                                                     signature):
    public, message, signature = (bytes.fromhex(v) for v in (public, message, signature))
    assert offline.ed25519_verify(public, signature, message)
    assert not offline.ed25519_verify(public, signature, message + b"x")
    assert not offline.ed25519_verify(public, signature[:-1] + b"\x01", message)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_the_plain_python_ed25519_check_agrees_with_cryptography(message, other):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    signature = key.sign(message)
    assert offline.ed25519_verify(public, signature, message)
    assert offline.ed25519_verify(public, signature, other) is (other == message)


ZERO_ROOT = base64.b64encode(b"\x00" * 32).decode()


@pytest.mark.parametrize("doc", [
    {}, {"origin": "o", "size": 1, "root": ZERO_ROOT, "event": [], "leaf_index": 0,
         "proof": [], "start": 0, "events": "x"},
    {"origin": "o", "size": 1, "root": ZERO_ROOT, "start": 0, "events": [1], "left": [],
     "right": [], "event": {"position": "x"}, "leaf_index": 0, "proof": [3]},
])
def test_a_malformed_proof_file_is_a_failed_check_not_a_crash(doc):
    checkpoint = offline.Checkpoint("o", 1, b"\x00" * 32)
    for check in (offline.check_inclusion, offline.check_slice):
        with pytest.raises(offline.VerificationError):
            check(doc, checkpoint)
