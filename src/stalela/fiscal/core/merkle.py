"""RFC 9162 Merkle tree for the per-tenant transparency log (DESIGN.md §6).

Pure: no I/O. The log is stored as *perfect aligned subtrees*: node ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``. Only such nodes are ever written (by
``CompactRange.append``), because they never change once complete; every other hash a proof needs
(the ragged right edge of a tree of arbitrary size) is recomputed by folding stored nodes.

Proof generation is split in two so the storage layer can fetch everything in one query:
``*_nodes()`` says which node ids are needed, ``inclusion_proof``/``consistency_proof``/
``root_from_nodes`` assemble the answer from a ``{(level, index): hash}`` mapping.

The verifiers implement RFC 9162 §2.1.3.2 and §2.1.4.2 literally (same variable names) so that an
auditor can compare them line by line with the RFC and with their own reimplementation.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
# RFC 9162 carries tree sizes and indices as uint64.
MAX_TREE_SIZE = 2**64 - 1
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_SIZE_BYTES = 8


class MissingNodeError(ValueError):
    """The node mapping handed to an assemble function lacks a node the proof needs."""

    def __init__(self, node: NodeId) -> None:
        super().__init__(f"node (level={node[0]}, index={node[1]}) is missing from the mapping")
        self.node = node


# --- hashing -------------------------------------------------------------------------------------

def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def seal_leaf_hash(seal_hash_hex: str) -> bytes:
    """Leaf hash of an invoice: the leaf is the 32 raw bytes of its seal hash, not the hex text."""
    return leaf_hash(hash_from_hex(seal_hash_hex))


def hash_to_hex(value: bytes) -> str:
    return _check_hash(value, "hash").hex()


def hash_from_hex(text: str) -> bytes:
    # Lower case only, like seal hashes: one spelling per hash keeps stored/signed text canonical.
    if not isinstance(text, str) or not _HEX_HASH.fullmatch(text):
        raise ValueError(f"expected 64 lower-case hex digits, got {text!r}")
    return bytes.fromhex(text)


def proof_to_hex(path: Iterable[bytes]) -> list[str]:
    return [hash_to_hex(p) for p in path]


def proof_from_hex(path: Iterable[str]) -> list[bytes]:
    return [hash_from_hex(p) for p in path]


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 by plain recursion; the reference the node-based code is tested
    against. O(n) hashes, so only for tests and small trees."""
    hashes = [_check_hash(h, "leaf hash") for h in leaf_hashes]

    def rec(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = _split(hi - lo)
        return node_hash(rec(lo, lo + k), rec(lo + k, hi))

    return rec(0, len(hashes)) if hashes else EMPTY_ROOT


# --- which nodes a proof needs -------------------------------------------------------------------

def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """Node ids, left to right, whose right-to-left fold is MTH(D[start:end]).

    MTH splits n leaves into the binary decomposition of n (largest power of two first), so the
    pieces are stored nodes exactly when ``start`` is a multiple of the largest power of two <= n.
    Every range that occurs in an RFC 9162 proof satisfies this; other ranges are rejected rather
    than silently hashed into something that is not a subtree of the log.
    """
    _check_int(start, "start")
    _check_int(end, "end")
    if not 0 <= start <= end:
        raise ValueError(f"need 0 <= start <= end, got start={start}, end={end}")
    n = end - start
    if n == 0:
        return []
    top = n.bit_length() - 1
    if start % (1 << top):
        raise ValueError(f"range [{start}, {end}) is unaligned: start must divide by {1 << top}")
    ids: list[NodeId] = []
    pos = start
    for level in range(top, -1, -1):
        if (n >> level) & 1:
            ids.append((level, pos >> level))
            pos += 1 << level
    return ids


def root_nodes(size: int) -> list[NodeId]:
    """Node ids for MTH of the first ``size`` leaves; also exactly the frontier at that size."""
    _check_size(size, "size")
    return subtree_nodes(0, size)


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    # The ranges of a proof are disjoint, so the flattened list has no duplicates.
    return [node for lo, hi in _inclusion_ranges(index, size) for node in subtree_nodes(lo, hi)]


def consistency_nodes(first: int, second: int) -> list[NodeId]:
    return [node for lo, hi in _consistency_ranges(first, second) for node in subtree_nodes(lo, hi)]


# --- assembling proofs from stored nodes ---------------------------------------------------------

def root_from_nodes(size: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH of the first ``size`` leaves, so proofs can be answered for any past checkpoint."""
    return _fold(root_nodes(size), nodes) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1: the audit path, bottom-up."""
    return [_fold(subtree_nodes(lo, hi), nodes) for lo, hi in _inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 9162 §2.1.4.1; empty when ``first == second``."""
    return [_fold(subtree_nodes(lo, hi), nodes) for lo, hi in _consistency_ranges(first, second)]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[size]), in proof order.

    The RFC recursion emits its top-level sibling last, so walk top-down and reverse.
    """
    _check_size(size, "size")
    _check_int(index, "index")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges = []
    lo, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            ranges.append((lo + k, lo + n))
            n = k
        else:
            ranges.append((lo, lo + k))
            lo, m, n = lo + k, m - k, n - k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form SUBPROOF(first, D[second], true), in proof order."""
    _check_size(first, "first")
    _check_size(second, "second")
    if not 0 < first <= second:
        raise ValueError(f"consistency proofs need 0 < first <= second, got {first}, {second}")
    if first == second:
        return []
    ranges = []
    lo, n, m, b = 0, second, first, True
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((lo + k, lo + n))
            n = k
        else:
            ranges.append((lo, lo + k))
            lo, m, n, b = lo + k, m - k, n - k, False
    # b is still true only when the old tree is itself a left subtree of the new one; the verifier
    # already holds its root (first_hash), so the RFC leaves it out of the proof.
    if not b:
        ranges.append((lo, lo + n))
    ranges.reverse()
    return ranges


def _fold(ids: Sequence[NodeId], nodes: Mapping[NodeId, bytes]) -> bytes:
    hashes = [_lookup(nodes, node) for node in ids]
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# --- the log frontier ----------------------------------------------------------------------------

class CompactRange:
    """The frontier of a log of ``size`` leaves: roots of the perfect subtrees of the binary
    decomposition of ``size``, left to right (largest first).

    It is all the log needs to append and to compute its current root without reading old nodes.
    ``append`` returns every node it completes so the storage layer can persist them alongside the
    leaf; a log that stores all of them can serve any proof for any past size.
    """

    __slots__ = ("_size", "_frontier")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        _check_size(size, "size")
        hashes = [_check_hash(h, "frontier hash") for h in frontier]
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a log of size {size} has a frontier of {size.bit_count()} hashes, "
                f"got {len(hashes)}"
            )
        self._size = size
        self._frontier = hashes

    @classmethod
    def from_nodes(cls, size: int, nodes: Mapping[NodeId, bytes]) -> CompactRange:
        """Rebuild the frontier of any stored size, e.g. when the stored frontier is lost."""
        return cls(size, [_lookup(nodes, node) for node in root_nodes(size)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> list[bytes]:
        return list(self._frontier)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the new nodes ``(level, index, hash)``, leaf first.

        Every trailing 1 bit of the old size is a frontier entry of the same level waiting for a
        right sibling, so each one merges (the carry of a binary increment).
        """
        h = _check_hash(leaf_hash, "leaf hash")
        if self._size == MAX_TREE_SIZE:
            raise ValueError("log is full (RFC 9162 tree sizes are uint64)")
        index = self._size
        new = [(0, index, h)]
        level = 0
        while (index >> level) & 1:
            h = node_hash(self._frontier.pop(), h)
            level += 1
            new.append((level, index >> level, h))
        self._frontier.append(h)
        self._size += 1
        return new

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        return [node for h in leaf_hashes for node in self.append(h)]

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        acc = self._frontier[-1]
        for h in reversed(self._frontier[:-1]):
            acc = node_hash(h, acc)
        return acc

    def to_bytes(self) -> bytes:
        """8-byte big-endian size followed by the frontier hashes: one column, self-validating."""
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._frontier)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        data = bytes(data)
        if len(data) < _SIZE_BYTES or (len(data) - _SIZE_BYTES) % HASH_SIZE:
            raise ValueError(f"a serialised frontier is 8 + 32*k bytes, got {len(data)}")
        size = int.from_bytes(data[:_SIZE_BYTES], "big")
        body = data[_SIZE_BYTES:]
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])

    def to_hex(self) -> str:
        return self.to_bytes().hex()

    @classmethod
    def from_hex(cls, text: str) -> CompactRange:
        try:
            return cls.from_bytes(bytes.fromhex(text))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid serialised frontier: {exc}") from None

    def __eq__(self, other: object) -> bool:  # also makes instances unhashable, as they are mutable
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._frontier == other._frontier

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -----------------------------------------------
# These take untrusted input and answer False instead of raising, so a verifier never needs to
# guess which exceptions mean "forged".

def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    inclusion_path = _as_path(path)
    if inclusion_path is None or not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not (_is_size(index) and _is_size(size)):
        return False
    # 1. Compare leaf_index against tree_size. If leaf_index >= tree_size, fail.
    if index >= size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 3. Set r to hash.
    r = bytes(leaf_hash)
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set or fn is 0.
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash.
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    consistency_path = _as_path(path)
    if consistency_path is None or not (_is_hash(first_root) and _is_hash(second_root)):
        return False
    if not (_is_size(first) and _is_size(second) and 0 < first <= second):
        return False
    # Outside the RFC algorithm, whose step 1 would reject it: PROOF(m, D[m]) is empty and the
    # trees are consistent exactly when their roots are equal.
    if first == second:
        return not consistency_path and first_root == second_root
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not consistency_path:
        return False
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        consistency_path.insert(0, bytes(first_root))
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = consistency_path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set or fn is 0.
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify fr == first_hash, sr == second_hash and sn == 0.
    return fr == first_root and sr == second_root and sn == 0


# --- helpers -------------------------------------------------------------------------------------

def _split(n: int) -> int:
    """The RFC's k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _lookup(nodes: Mapping[NodeId, bytes], node: NodeId) -> bytes:
    try:
        return _check_hash(nodes[node], f"node {node}")
    except KeyError:
        raise MissingNodeError(node) from None


def _check_int(value: object, name: str) -> int:
    # bool is an int subclass; True as a leaf index is a bug, not a 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def _check_size(value: object, name: str) -> int:
    _check_int(value, name)
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {value}")
    return value


def _check_hash(value: object, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes, got {value!r:.80}")
    return bytes(value)


def _is_hash(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TREE_SIZE


def _as_path(path: object) -> list[bytes] | None:
    """A copy of an untrusted path, or None unless it is a list/tuple of 32-byte hashes."""
    if not isinstance(path, (list, tuple)) or not all(_is_hash(p) for p in path):
        return None
    return [bytes(p) for p in path]
