from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.fiscal.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MissingNodeError,
    consistency_nodes,
    consistency_proof,
    hash_from_hex,
    hash_to_hex,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    mth,
    node_hash,
    proof_from_hex,
    proof_to_hex,
    root_from_nodes,
    root_nodes,
    seal_leaf_hash,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "rfc9162_vectors.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]]
FAST = settings(max_examples=40, deadline=None)


# Reference PATH and PROOF written directly from the recursive definitions in RFC 9162 §2.1.3.1 and
# §2.1.4.1 over mth(), independent of the node-id machinery under test.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [mth(d[k:])]
    return ref_path(m - k, d[k:]) + [mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True) if m < len(d) else []


def make_leaves(n: int, seed: int = 0) -> list[bytes]:
    return [leaf_hash(seed.to_bytes(8, "big") + i.to_bytes(8, "big")) for i in range(n)]


def build(leaves: list[bytes]) -> tuple[CompactRange, dict[tuple[int, int], bytes]]:
    cr = CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    for level, index, h in cr.extend(leaves):
        assert (level, index) not in nodes, "a node was emitted twice"
        nodes[(level, index)] = h
    return cr, nodes


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


VEC_CR, VEC_NODES = build(LEAVES)


# --- RFC 9162 vectors ----------------------------------------------------------------------------

def test_hashing_primitives():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert mth([]) == EMPTY_ROOT == CompactRange().root() == root_from_nodes(0, {})
    assert leaf_hash(b"").hex() == VECTORS["roots"]["1"]
    assert node_hash(LEAVES[0], LEAVES[1]).hex() == VECTORS["roots"]["2"]


@pytest.mark.parametrize("size", range(1, 9))
def test_vector_roots(size):
    expected = VECTORS["roots"][str(size)]
    cr = CompactRange()
    cr.extend(LEAVES[:size])
    assert mth(LEAVES[:size]).hex() == expected
    assert cr.root().hex() == expected
    assert root_from_nodes(size, VEC_NODES).hex() == expected


@pytest.mark.parametrize(
    "case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf_index']}-of-{c['tree_size']}"
)
def test_vector_inclusion(case):
    index, size, expected = case["leaf_index"], case["tree_size"], case["audit_path"]
    assert proof_to_hex(inclusion_proof(index, size, VEC_NODES)) == expected
    assert proof_to_hex(ref_path(index, LEAVES[:size])) == expected
    root = bytes.fromhex(VECTORS["roots"][str(size)])
    assert verify_inclusion(LEAVES[index], index, size, proof_from_hex(expected), root)


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-to-{c['second']}"
)
def test_vector_consistency(case):
    first, second, expected = case["first"], case["second"], case["consistency_path"]
    assert proof_to_hex(consistency_proof(first, second, VEC_NODES)) == expected
    assert proof_to_hex(ref_proof(first, LEAVES[:second])) == expected
    r1 = bytes.fromhex(VECTORS["roots"][str(first)])
    r2 = bytes.fromhex(VECTORS["roots"][str(second)])
    assert verify_consistency(first, second, r1, r2, proof_from_hex(expected))


# --- properties ----------------------------------------------------------------------------------

@FAST
@given(size=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_every_inclusion_proof_verifies_and_alterations_fail(size, seed):
    # A seeded Random rather than data.draw() per leaf: hundreds of draws per example are slow.
    rng = random.Random(seed)
    leaves = make_leaves(size, seed)
    cr, nodes = build(leaves)
    root = cr.root()
    for i in range(size):
        path = inclusion_proof(i, size, nodes)
        assert verify_inclusion(leaves[i], i, size, path, root)
        assert not verify_inclusion(flip(leaves[i]), i, size, path, root)
        assert not verify_inclusion(leaves[i], i, size, path, flip(root))
        assert not verify_inclusion(leaves[i], i + size, size, path, root)
        if size > 1:
            other = (i + rng.randrange(1, size)) % size
            assert not verify_inclusion(leaves[i], other, size, path, root)
            assert not verify_inclusion(leaves[i], i, size, path[:-1], root)
            assert not verify_inclusion(leaves[i], i, size, [*path, path[0]], root)
            j = rng.randrange(len(path))
            tampered = [*path[:j], flip(path[j]), *path[j + 1 :]]
            assert not verify_inclusion(leaves[i], i, size, tampered, root)


@FAST
@given(second=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_every_consistency_proof_verifies_and_alterations_fail(second, seed):
    rng = random.Random(seed)
    leaves = make_leaves(second, seed)
    cr, nodes = build(leaves)
    r2 = cr.root()
    for first in range(1, second + 1):
        r1 = root_from_nodes(first, nodes)
        path = consistency_proof(first, second, nodes)
        assert verify_consistency(first, second, r1, r2, path)
        assert not verify_consistency(first, second, flip(r1), r2, path)
        assert not verify_consistency(first, second, r1, flip(r2), path)
        assert not verify_consistency(first, second, r1, r2, [*path, r1])
        if path:
            assert not verify_consistency(first, second, r1, r2, path[:-1])
            j = rng.randrange(len(path))
            tampered = [*path[:j], flip(path[j]), *path[j + 1 :]]
            assert not verify_consistency(first, second, r1, r2, tampered)


@FAST
@given(size=st.integers(0, 300), seed=st.integers(0, 2**32))
def test_compact_range_emits_exactly_the_stored_nodes(size, seed):
    leaves = make_leaves(size, seed)
    cr = CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    for n in range(size):
        assert cr.root() == mth(leaves[:n]) == root_from_nodes(n, nodes)
        assert all(node in nodes for node in root_nodes(n))
        assert CompactRange.from_nodes(n, nodes) == cr
        for level, index, h in cr.append(leaves[n]):
            nodes[(level, index)] = h
    assert cr.size == size and cr.root() == mth(leaves)
    # Every perfect aligned subtree of [0, size) and nothing else, each with its MTH.
    expected = {
        (level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
    }
    assert set(nodes) == expected
    rng = random.Random(seed)
    for level, index in rng.sample(sorted(expected), min(10, len(expected))):
        assert nodes[(level, index)] == mth(leaves[index << level : (index + 1) << level])
    if size:
        for _ in range(20):
            s = rng.randint(1, size)
            i = rng.randrange(s)
            m = rng.randint(1, s)
            assert all(node in nodes for node in inclusion_nodes(i, s))
            assert all(node in nodes for node in consistency_nodes(m, s))


def test_node_based_proofs_match_reference_exhaustively():
    leaves = make_leaves(40)
    _, nodes = build(leaves)
    for second in range(1, 41):
        for index in range(second):
            assert inclusion_proof(index, second, nodes) == ref_path(index, leaves[:second])
        for first in range(1, second + 1):
            assert consistency_proof(first, second, nodes) == ref_proof(first, leaves[:second])


def test_proof_node_lists_are_minimal():
    # One stored node per proof element except the single ragged-edge element, which folds the
    # perfect subtrees of its range; no duplicates, no unused fetches.
    _, nodes = build(make_leaves(100))
    for size, index in [(100, 0), (100, 99), (100, 63), (64, 5), (1, 0)]:
        ids = inclusion_nodes(index, size)
        assert len(ids) == len(set(ids))
        used = {k: v for k, v in nodes.items() if k in ids}
        assert inclusion_proof(index, size, used) == inclusion_proof(index, size, nodes)
    assert consistency_nodes(7, 7) == [] and consistency_proof(7, 7, {}) == []
    assert root_nodes(13) == [(3, 0), (2, 2), (0, 12)]


def test_subtree_nodes():
    assert subtree_nodes(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert subtree_nodes(8, 14) == [(2, 2), (1, 6)]
    assert subtree_nodes(5, 5) == []
    with pytest.raises(ValueError, match="unaligned"):
        subtree_nodes(2, 8)  # MTH(D[2:8]) splits as 4+2 starting at 2: not stored nodes
    with pytest.raises(ValueError):
        subtree_nodes(4, 3)


# --- frontier ------------------------------------------------------------------------------------

@FAST
@given(size=st.integers(0, 1100), seed=st.integers(0, 2**32))
def test_frontier_round_trips_and_keeps_appending(size, seed):
    leaves = make_leaves(size + 3, seed)
    cr = CompactRange()
    cr.extend(leaves[:size])
    assert len(cr.frontier) == size.bit_count()
    for restored in (CompactRange.from_bytes(cr.to_bytes()), CompactRange.from_hex(cr.to_hex()),
                     CompactRange(cr.size, cr.frontier)):
        assert restored == cr and restored.root() == cr.root()
        assert restored.extend(leaves[size:]) == CompactRange(cr.size, cr.frontier).extend(
            leaves[size:]
        )
        assert restored.root() == mth(leaves)


def test_frontier_validation():
    h = leaf_hash(b"x")
    with pytest.raises(ValueError, match="frontier of 2 hashes"):
        CompactRange(3, [h])
    with pytest.raises(ValueError, match="frontier of 0 hashes"):
        CompactRange(0, [h])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(1, [b"short"])
    with pytest.raises(ValueError):
        CompactRange(-1)
    with pytest.raises(ValueError):
        CompactRange.from_bytes(b"\x00" * 7)
    with pytest.raises(ValueError):
        CompactRange.from_bytes((1).to_bytes(8, "big") + h + b"\x00")
    with pytest.raises(ValueError):
        CompactRange.from_bytes((2).to_bytes(8, "big") + h + h)  # popcount(2) == 1
    with pytest.raises(ValueError):
        CompactRange.from_hex("zz")
    with pytest.raises(ValueError):
        CompactRange().append(b"\x00" * 31)
    cr = CompactRange(1, [h])
    cr.frontier.append(h)  # a copy: the caller cannot corrupt the range
    assert cr.frontier == [h]


# --- argument checking ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: inclusion_nodes(5, 5), ValueError),
        (lambda: inclusion_nodes(-1, 5), ValueError),
        (lambda: inclusion_nodes(0, 0), ValueError),
        (lambda: inclusion_nodes(True, 5), TypeError),
        (lambda: consistency_nodes(0, 3), ValueError),
        (lambda: consistency_nodes(4, 3), ValueError),
        (lambda: root_nodes(-1), ValueError),
        (lambda: root_nodes(2**64), ValueError),
        (lambda: inclusion_proof(0, 8, {}), MissingNodeError),
        (lambda: consistency_proof(3, 8, {(0, 2): b"short"}), ValueError),
        (lambda: mth([b"short"]), ValueError),
        (lambda: hash_from_hex("AB" * 32), ValueError),
        (lambda: hash_from_hex("ab" * 31), ValueError),
    ],
)
def test_invalid_arguments_raise(call, error):
    with pytest.raises(error):
        call()


def test_missing_node_names_the_node():
    with pytest.raises(MissingNodeError) as info:
        root_from_nodes(3, {(1, 0): LEAVES[0]})
    assert info.value.node == (0, 2)


def test_hex_helpers():
    seal = "ab" * 32
    assert seal_leaf_hash(seal) == leaf_hash(bytes.fromhex(seal))
    assert hash_from_hex(hash_to_hex(LEAVES[3])) == LEAVES[3]


# --- verifiers never raise -----------------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=5),
    st.binary(max_size=40), st.lists(st.binary(min_size=31, max_size=33), max_size=3),
    st.just([LEAVES[0]] * 80), st.just(object()), st.just(LEAVES[1]), st.just(bytearray(LEAVES[2])),
)


@settings(max_examples=300, deadline=None)
@given(a=JUNK, b=JUNK, c=JUNK, d=JUNK, e=JUNK)
def test_verifiers_return_false_on_junk(a, b, c, d, e):
    assert verify_inclusion(a, b, c, d, e) in (True, False)
    assert verify_consistency(a, b, c, d, e) in (True, False)


@pytest.mark.parametrize(
    "args",
    [
        (LEAVES[0], 1, 1, [], LEAVES[0]),  # index == size
        (LEAVES[0], -1, 1, [], LEAVES[0]),
        (LEAVES[0], 0, 0, [], EMPTY_ROOT),
        (LEAVES[0], 0, 2**64, [LEAVES[1]], LEAVES[0]),
        (LEAVES[0][:31], 0, 1, [], LEAVES[0]),
        (LEAVES[0], 0, 1, LEAVES[0], LEAVES[0]),  # path given as bytes, not a list
        (LEAVES[0], 0, 1, [None], LEAVES[0]),
        (LEAVES[0], "0", 1, [], LEAVES[0]),
    ],
)
def test_verify_inclusion_rejects_malformed(args):
    assert verify_inclusion(*args) is False


def test_verify_consistency_edge_cases():
    r = bytes.fromhex(VECTORS["roots"]["4"])
    assert verify_consistency(4, 4, r, r, [])
    assert not verify_consistency(4, 4, r, r, [r])
    assert not verify_consistency(4, 4, r, flip(r), [])
    assert not verify_consistency(0, 4, EMPTY_ROOT, r, [])  # first >= 1, as in the RFC
    assert not verify_consistency(5, 4, r, r, [r])
    assert not verify_consistency(2, 4, r, r, [])
    assert not verify_consistency(2, 4, r, r, "not a list")
