"""RFC 9162 inclusion and consistency proofs (2.1.3.1, 2.1.4.1) from persisted hashes.

:func:`inclusion_proof` and :func:`consistency_proof` build one proof in O(log n) range reads.
Many proofs of one tree at once (a trail's records, a bundle): :func:`inclusion_proofs` returns
exactly what :func:`inclusion_proof` returns for each index, but the proofs of neighbouring leaves
share most of their hashes: one call reads the persisted hashes it needs in a few range reads per
level, then computes every subtree hash and every right-edge range hash once, memoised for the
duration of the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditlog.errors import VerificationError
from auditlog.ledger.hashes import node_hash
from auditlog.ledger.merkle_tree import (
    NODE_LEVEL_STRIDE,
    NodeSource,
    _largest_power_of_two_below,
    _range_hash,
    _read,
    _subtree,
)

__all__ = ["consistency_proof", "inclusion_proof", "inclusion_proofs"]

#: Most unneeded hashes that a batch of proofs reads to join two range reads of one level into one.
MERGE_GAP = 64


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


def inclusion_proofs(indices: Sequence[int], size: int, source: NodeSource) -> list[list[bytes]]:
    """``[inclusion_proof(i, size, source) for i in indices]``, computing each hash once.

    Raises like :func:`inclusion_proof` (for the first index outside the tree) before reading
    anything. Reads O(len(indices) * log(size)) hashes at most, in a few range reads per level.
    """
    for index in indices:
        if not 0 <= index < size:
            raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    if not indices:
        return []
    hasher = _BatchHasher(source, size, indices)
    return [hasher.path(index) for index in indices]


class _BatchHasher:
    """Subtree and range hashes of one tree of ``size`` leaves, each computed once.

    Which hashes a proof needs (RFC 9162 2.1.3.1): PATH(m, D[n]) holds, for each ancestor of leaf
    m (m itself included) that has a sibling, the MTH of that sibling's leaves. A sibling is a
    complete subtree, except the one that reaches the right edge of the tree: its range
    [start, n) is the MTH of the complete subtrees of the binary decomposition of n that lie
    right of ``start`` (the tree's *frontier*). So, for each persisted level b (a multiple of
    :data:`NODE_LEVEL_STRIDE`, 0 = leaves), the hashes of levels b .. b + 3 on leaf m's path are
    all computed from the aligned block of 2^STRIDE level-b hashes around m's ancestor at level
    b, and the frontier's from the last such block. Each block is read once (merged range reads)
    and hashed level by level; ranges reaching the right edge are memoised.
    """

    def __init__(self, source: NodeSource, size: int, indices: Sequence[int]) -> None:
        self._source = source
        self._size = size
        # level -> index -> complete subtree hash
        self._levels: dict[int, dict[int, bytes]] = {
            level: {} for level in range(size.bit_length() + NODE_LEVEL_STRIDE)
        }
        self._ranges: dict[tuple[int, int], bytes] = {}  # (start, stop) -> MTH(D[start:stop])
        block = 1 << NODE_LEVEL_STRIDE
        for base in range(0, size.bit_length(), NODE_LEVEL_STRIDE):
            count = size >> base  # complete subtrees at this level
            starts = {(i >> base) // block * block for i in indices}
            spans = [(lo, min(lo + block, count)) for lo in starts]
            # The frontier's: the last `block` hashes, from a multiple of 2^(STRIDE - 1).
            spans.append((max(0, count - block) // (block // 2) * (block // 2), count))
            for lo, hi in _merge_spans(spans):
                self._hash_up(base, lo, list(_read(source, base, lo, hi)))

    def _hash_up(self, base: int, lo: int, layer: list[bytes]) -> None:
        """Keep ``layer`` (level ``base``, from index ``lo``, a multiple of 2^(STRIDE - 1)) and
        the complete subtrees above it up to level base + STRIDE - 1."""
        for level in range(base, base + NODE_LEVEL_STRIDE):
            first = lo >> (level - base)
            self._levels[level].update(zip(range(first, first + len(layer)), layer, strict=True))
            # node = SHA-256(0x01 || left || right), RFC 9162 2.1.1 (aligned pairs of one level)
            layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]

    def path(self, m: int) -> list[bytes]:
        """PATH(m, D[n]) of RFC 9162 2.1.3.1, leaf-side first, by levels: below level
        ``inner`` (the highest bit where m and n - 1 differ) every ancestor of m has a sibling,
        a complete subtree or the range from it to the right edge; from ``inner`` up, the
        ancestors lie on the right edge and only those that are right children have one (their
        complete left sibling)."""
        n, levels = self._size, self._levels
        path: list[bytes] = []
        inner = (m ^ (n - 1)).bit_length()
        for level in range(inner):
            sibling = (m >> level) ^ 1
            if (sibling + 1) << level <= n:
                digest = levels[level].get(sibling)
                path.append(self.subtree(level, sibling) if digest is None else digest)
            else:  # it reaches the right edge: MTH(D[sibling * 2^level : n])
                path.append(self.range_hash(sibling << level, n))
        for level in range(inner, n.bit_length()):
            if m >> level & 1:
                digest = levels[level].get((m >> level) - 1)
                path.append(self.subtree(level, (m >> level) - 1) if digest is None else digest)
        return path

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree covering leaves [index * 2^level, (index + 1) * 2^level)
        (from the blocks read in ``__init__``, else read and folded on its own)."""
        nodes = self._levels[level]
        digest = nodes.get(index)
        if digest is None:
            digest = nodes[index] = _subtree(self._source, level, index)
        return digest

    def range_hash(self, start: int, stop: int) -> bytes:
        """MTH(D[start:stop]) = HASH(0x01 || MTH(D[start:start+k]) || MTH(D[start+k:stop])) with
        k the largest power of two < n = stop - start (RFC 9162 2.1.1). Proofs only meet ranges
        that start on a multiple of a power of two >= n: the left part is a complete subtree and
        the right part is again such a range."""
        n = stop - start
        if n & (n - 1) == 0:  # a complete subtree of 2^level leaves
            level = n.bit_length() - 1
            return self.subtree(level, start >> level)
        key = (start, stop)
        digest = self._ranges.get(key)
        if digest is None:
            k = _largest_power_of_two_below(n)
            left = self.subtree(k.bit_length() - 1, start // k)
            digest = self._ranges[key] = node_hash(left, self.range_hash(start + k, stop))
        return digest


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans, joined where they overlap or lie at most :data:`MERGE_GAP` apart (one
    range read of a few unneeded hashes costs less than a second read)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + MERGE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        elif lo < hi:
            merged.append((lo, hi))
    return merged
