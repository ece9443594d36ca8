"""Many RFC 9162 inclusion proofs of one tree at once (a trail's records, a bundle).

:func:`inclusion_proofs` returns exactly what :func:`auditlog.ledger.merkle.inclusion_proof`
returns for each index, but the proofs of neighbouring leaves share most of their hashes: one call
reads the persisted hashes it needs in a few range reads per level, then computes every subtree
hash and every right-edge range hash once, memoised for the duration of the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditlog.ledger.hashes import node_hash
from auditlog.ledger.merkle import (
    NODE_LEVEL_STRIDE,
    NodeSource,
    _largest_power_of_two_below,
    _path_ranges,
    _read,
)

__all__ = ["inclusion_proofs"]

#: Most unneeded hashes that a batch of proofs reads to join two range reads of one level into one.
MERGE_GAP = 64


def inclusion_proofs(indices: Sequence[int], size: int, source: NodeSource) -> list[list[bytes]]:
    """``[inclusion_proof(i, size, source) for i in indices]``, computing each hash once.

    Neighbouring leaves share most of their paths; one call reads every persisted hash it needs
    in a few range reads per level and hashes each subtree once. Raises like
    :func:`inclusion_proof` (for the first index outside the tree) before reading anything.
    """
    paths = [_path_ranges(index, size) for index in indices]
    hasher = _BatchHasher(source, {r for path in paths for r in path})
    return [[hasher.range_hash(start, stop) for start, stop in path] for path in paths]


class _BatchHasher:
    """MTH of many ranges of one tree, memoised for the duration of one call.

    Every range met by proofs starts on a multiple of a power of two >= its length, so its MTH
    folds the perfect subtrees of the binary decomposition of its length (``_range_hash``).
    """

    def __init__(self, source: NodeSource, ranges: set[tuple[int, int]]) -> None:
        self._source = source
        self._subtrees: dict[tuple[int, int], bytes] = {}  # (level, index) -> subtree hash
        self._ranges: dict[tuple[int, int], bytes] = {}  # (start, stop) -> MTH(D[start:stop])
        # The persisted hashes under every subtree of every range, as spans of one level.
        spans: dict[int, list[tuple[int, int]]] = {}
        for start, stop in ranges:
            offset = start
            for level in range((stop - start).bit_length() - 1, -1, -1):
                if (stop - start) >> level & 1:
                    below = level % NODE_LEVEL_STRIDE
                    first = (offset >> level) << below
                    spans.setdefault(level - below, []).append((first, first + (1 << below)))
                    offset += 1 << level
        for base, wanted in spans.items():
            for lo, hi in _merge_spans(wanted):
                for i, digest in enumerate(_read(source, base, lo, hi), start=lo):
                    self._subtrees[base, i] = digest

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree covering leaves [index * 2^level, (index + 1) * 2^level);
        persisted levels are read in ``__init__`` (or here, one by one, if one was not)."""
        key = (level, index)
        digest = self._subtrees.get(key)
        if digest is None and level % NODE_LEVEL_STRIDE == 0:  # persisted, not read yet
            digest = _read(self._source, level, index, index + 1)[0]
            self._subtrees[key] = digest
        elif digest is None:
            # node = SHA-256(0x01 || left || right), RFC 9162 2.1.1; the halves are perfect
            digest = node_hash(
                self.subtree(level - 1, 2 * index), self.subtree(level - 1, 2 * index + 1)
            )
            self._subtrees[key] = digest
        return digest

    def range_hash(self, start: int, stop: int) -> bytes:
        """MTH(D[start:stop]) = HASH(0x01 || MTH(D[start:start+k]) || MTH(D[start+k:stop])) with
        k the largest power of two < n = stop - start (RFC 9162 2.1.1); for such ranges the left
        part is a perfect subtree and the right part is again such a range."""
        key = (start, stop)
        digest = self._ranges.get(key)
        if digest is None:
            n = stop - start
            if n & (n - 1) == 0:  # a perfect subtree of 2^level leaves
                level = n.bit_length() - 1
                digest = self.subtree(level, start >> level)
            else:
                k = _largest_power_of_two_below(n)
                left = self.subtree(k.bit_length() - 1, start // k)
                digest = node_hash(left, self.range_hash(start + k, stop))
            self._ranges[key] = digest
        return digest


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans, joined where they overlap or lie at most :data:`MERGE_GAP` apart (one
    range read of a few unneeded hashes costs less than a second read)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + MERGE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
