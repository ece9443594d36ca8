"""RFC 9162 Merkle tree over a persisted store: frontier, roots, proofs and their verification.

Hand-written on purpose: no maintained Python library computes RFC 9162 inclusion and
consistency proofs from subtree hashes kept in a database (they either hold the whole tree in
memory or implement RFC 6962 verification only), and the verifier must be auditable line by line.

Storage layout: level 0 holds the leaf hashes (the records themselves); the hashes of complete
subtrees are persisted only at levels that are multiples of :data:`NODE_LEVEL_STRIDE`. A complete
subtree at level L is computed from at most 2^(L mod 4) persisted hashes of level L - (L mod 4), so
every root and proof costs O(log n) small range reads. Many proofs of one tree at once (a trail,
a bundle): :func:`auditlog.ledger.merkle_proofs.inclusion_proofs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from auditlog.errors import VerificationError
from auditlog.ledger.hashes import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "NODE_LEVEL_STRIDE",
    "MemoryNodeSource",
    "MerkleFrontier",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "naive_root",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

#: Complete subtree hashes are persisted at levels 4, 8, 12, ... (level 0: the leaf hashes).
NODE_LEVEL_STRIDE = 4


class NodeSource(Protocol):
    """Read access to persisted hashes."""

    def get_nodes(self, level: int, start: int, stop: int) -> Sequence[bytes]:
        """Hashes of the complete subtrees ``start .. stop-1`` at ``level`` (0 = leaf hashes;
        other levels are multiples of :data:`NODE_LEVEL_STRIDE`)."""
        ...


def _largest_power_of_two_below(n: int) -> int:
    """k = the largest power of two with k < n (RFC 9162 2.1.1), for n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def _read(source: NodeSource, level: int, start: int, stop: int) -> Sequence[bytes]:
    nodes = source.get_nodes(level, start, stop)
    if len(nodes) != stop - start:
        raise VerificationError(
            f"node store returned {len(nodes)} hashes for level {level} [{start}, {stop}): "
            f"expected {stop - start}"
        )
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of a perfect subtree from its 2^j hashes at one level (pairwise, bottom up)."""
    layer = list(hashes)
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def _subtree(source: NodeSource, level: int, index: int) -> bytes:
    """Hash of the complete subtree covering leaves [index * 2^level, (index + 1) * 2^level)."""
    below = level % NODE_LEVEL_STRIDE
    base = level - below
    width = 1 << below
    return _fold(_read(source, base, index * width, (index + 1) * width))


def _range_hash(source: NodeSource, start: int, stop: int) -> bytes:
    """MTH(D[start:stop]) for a range that starts on a multiple of a power of two >= its length
    (every range met by RFC 9162 proofs): the perfect subtrees of the binary decomposition of
    the length, largest first, folded from the right."""
    parts: list[bytes] = []
    offset = start
    for level in range((stop - start).bit_length() - 1, -1, -1):
        if (stop - start) >> level & 1:
            parts.append(_subtree(source, level, offset >> level))
            offset += 1 << level
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


class MemoryNodeSource:
    """A :class:`NodeSource` in memory (tests, bundles); fed leaf hash by leaf hash."""

    def __init__(self) -> None:
        self.levels: dict[int, list[bytes]] = {0: []}
        self._frontier = MerkleFrontier()

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash and the complete subtree hashes it finishes."""
        self.levels[0].append(leaf)
        for level, index, digest in self._frontier.append(leaf):
            nodes = self.levels.setdefault(level, [])
            if len(nodes) != index:
                raise VerificationError(f"level {level}: expected node {len(nodes)}, got {index}")
            nodes.append(digest)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def get_nodes(self, level: int, start: int, stop: int) -> Sequence[bytes]:
        return self.levels.get(level, [])[start:stop]


class MerkleFrontier:
    """The right edge of the tree: the perfect subtrees of the binary decomposition of ``size``.

    ``append`` is O(log n) and reports the complete subtrees it finishes at persisted levels.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self) -> None:
        self.size = 0
        self._levels: list[int] = []  # levels of the frontier's subtrees, strictly decreasing
        self._hashes: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the new persisted nodes ``(level, index, hash)``."""
        if len(leaf) != HASH_SIZE:
            raise VerificationError(f"leaf hash has {len(leaf)} bytes, expected {HASH_SIZE}")
        self.size = size = self.size + 1
        levels, hashes = self._levels, self._hashes
        new_nodes: list[tuple[int, int, bytes]] = []
        # The new leaf completes one subtree per trailing zero bit of the new size.
        level, digest = 0, leaf
        while not size >> level & 1:
            levels.pop()
            # node = SHA-256(0x01 || left || right), RFC 9162 2.1.1
            digest = node_hash(hashes.pop(), digest)
            level += 1
            if level % NODE_LEVEL_STRIDE == 0:
                new_nodes.append((level, (size >> level) - 1, digest))
        levels.append(level)
        hashes.append(digest)
        return new_nodes

    def append_subtree(self, level: int, digest: bytes) -> list[tuple[int, int, bytes]]:
        """Add the hash of a perfect subtree of 2^level leaves (``size`` must be a multiple of
        2^level); returns the new persisted nodes ``(level, index, hash)`` above ``level``."""
        if self.size & ((1 << level) - 1):
            raise VerificationError(f"a subtree of level {level} cannot follow {self.size} leaves")
        levels, hashes = self._levels, self._hashes
        self.size = size = self.size + (1 << level)
        new_nodes: list[tuple[int, int, bytes]] = []
        while not size >> level & 1:
            levels.pop()
            digest = node_hash(hashes.pop(), digest)
            level += 1
            if level % NODE_LEVEL_STRIDE == 0:
                new_nodes.append((level, (size >> level) - 1, digest))
        levels.append(level)
        hashes.append(digest)
        return new_nodes

    def subtrees(self) -> list[tuple[int, bytes]]:
        """The frontier as ``(level, hash)`` pairs, largest subtree first."""
        return list(zip(self._levels, self._hashes, strict=True))

    @classmethod
    def from_subtrees(cls, subtrees: Sequence[tuple[int, bytes]]) -> MerkleFrontier:
        """The frontier of a tree given by its perfect subtrees, largest first."""
        frontier = cls()
        for level, digest in subtrees:
            _check_hash("frontier hash", digest)
            frontier.append_subtree(level, digest)
        return frontier

    def copy(self) -> MerkleFrontier:
        twin = MerkleFrontier()
        twin.size, twin._levels, twin._hashes = self.size, list(self._levels), list(self._hashes)
        return twin

    def root(self) -> bytes:
        """MTH of the first ``size`` leaves (RFC 9162 2.1.1); the empty tree: SHA-256("")."""
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for digest in reversed(self._hashes[:-1]):
            result = node_hash(digest, result)
        return result

    @classmethod
    def restore(cls, size: int, source: NodeSource) -> MerkleFrontier:
        """Rebuild the frontier of a tree of ``size`` leaves from persisted hashes."""
        frontier = cls()
        offset = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                frontier._levels.append(level)
                frontier._hashes.append(_subtree(source, level, offset >> level))
                offset += 1 << level
        frontier.size = size
        return frontier


def root_hash(size: int, source: NodeSource) -> bytes:
    """MTH of the first ``size`` leaves, from persisted hashes."""
    if size < 0:
        raise VerificationError(f"tree size must be non-negative, got {size}")
    return EMPTY_ROOT if size == 0 else _range_hash(source, 0, size)


def _path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, stop) whose MTH make up PATH(index, D[size]) (RFC 9162 2.1.3.1),
    leaf-side first."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, stop, m = 0, size, index
    while stop - start > 1:
        k = _largest_power_of_two_below(stop - start)
        if m < k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, stop))
            stop = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start, m = start + k, m - k
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1, leaf-side first."""
    return [_range_hash(source, start, stop) for start, stop in _path_ranges(index, size)]


def consistency_proof(size1: int, size2: int, source: NodeSource) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 2.1.4.1 (defined for 0 < size1 <= size2)."""
    if not 0 < size1 <= size2:
        raise VerificationError(
            f"consistency proof needs 0 < size1 <= size2, got size1 {size1}, size2 {size2}"
        )
    proof: list[bytes] = []
    start, stop, m, complete = 0, size2, size1, True
    while m != stop - start:  # SUBPROOF(m, D[start:stop], complete)
        k = _largest_power_of_two_below(stop - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(_range_hash(source, start + k, stop))
            stop = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(_range_hash(source, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:  # SUBPROOF(m, D[m], false) = [MTH(D[m])]
        proof.append(_range_hash(source, start, stop))
    proof.reverse()
    return proof


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} has {len(value)} bytes, expected {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 2.1.3.2); raises :class:`VerificationError`."""
    _check_hash("leaf hash", leaf)
    _check_hash("root", root)
    for i, p in enumerate(proof):
        _check_hash(f"inclusion proof[{i}]", p)
    # 1. If leaf_index is greater than or equal to tree_size, then fail.
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.  3. Set r to hash.
    fn, sn, r = index, size - 1, leaf
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise VerificationError(
                f"inclusion proof has wrong size: expected {len(proof) - 1} hashes or fewer"
            )
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)  # i. Set r to HASH(0x01 || p || r).
            # ii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)  # Otherwise: set r to HASH(0x01 || r || p).
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash.
    if sn != 0:
        raise VerificationError(
            f"inclusion proof has wrong size: {len(proof)} hashes is too few for index {index} "
            f"in a tree of size {size}"
        )
    if r != root:
        raise VerificationError(
            f"inclusion proof does not lead to the root: expected {root.hex()}, computed {r.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check a consistency proof (RFC 9162 2.1.4.2); raises :class:`VerificationError`.

    Equal sizes need an empty proof and equal roots (the empty tree's root is SHA-256("")). A
    proof from size 0 is refused: RFC 9162 2.1.4.1 defines proofs for 0 < size1 only.
    """
    if not 0 <= size1 <= size2:
        raise VerificationError(f"size1 must be in [0, size2]: got size1 {size1}, size2 {size2}")
    if size1 == size2:
        if proof:
            raise VerificationError(
                f"consistency proof for equal sizes must be empty, got {len(proof)} hashes"
            )
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise VerificationError(
                f"root of the empty tree: expected {EMPTY_ROOT.hex()}, got {root1.hex()}"
            )
        if root1 != root2:
            raise VerificationError(
                f"roots differ at equal size {size1}: {root1.hex()} != {root2.hex()}"
            )
        return
    if size1 == 0:
        raise VerificationError("consistency with the empty tree proves nothing (size1 is 0)")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for i, c in enumerate(proof):
        _check_hash(f"consistency proof[{i}]", c)
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise VerificationError(f"consistency proof from {size1} to {size2} is empty")
    path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise VerificationError(
                f"consistency proof from {size1} to {size2} has too many hashes ({len(proof)})"
            )
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)  # i. Set fr to HASH(0x01 || c || fr).
            sr = node_hash(c, sr)  # ii. Set sr to HASH(0x01 || c || sr).
            # iii. If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set or
            # fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)  # Otherwise: set sr to HASH(0x01 || sr || c).
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify fr equals first_hash, sr equals second_hash, and sn is 0.
    if sn != 0:
        raise VerificationError(
            f"consistency proof from {size1} to {size2} has too few hashes ({len(proof)})"
        )
    if fr != root1:
        raise VerificationError(
            f"consistency proof does not lead to root1: expected {root1.hex()}, computed {fr.hex()}"
        )
    if sr != root2:
        raise VerificationError(
            f"consistency proof does not lead to root2: expected {root2.hex()}, computed {sr.hex()}"
        )


def naive_root(leaves: Sequence[bytes]) -> bytes:
    """MTH by the recursive definition of RFC 9162 2.1.1 (for tests and small bundles)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))
