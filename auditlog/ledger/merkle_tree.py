"""RFC 9162 Merkle tree over a persisted store: the frontier, subtree reads and roots.

Storage layout: level 0 holds the leaf hashes (the records themselves); the hashes of complete
subtrees are persisted only at levels that are multiples of :data:`NODE_LEVEL_STRIDE`. A complete
subtree at level L is computed from at most 2^(L mod 4) persisted hashes of level L - (L mod 4), so
every root and proof costs O(log n) small range reads. Proofs: :mod:`auditlog.ledger.merkle_proofs`;
their verification: :mod:`auditlog.ledger.merkle_verify`; all of it: :mod:`auditlog.ledger.merkle`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from auditlog.errors import VerificationError
from auditlog.ledger.hashes import EMPTY_ROOT, HASH_SIZE, NODE_HASH_PREFIX, node_hash

__all__ = [
    "NODE_LEVEL_STRIDE",
    "MemoryNodeSource",
    "MerkleFrontier",
    "NodeSource",
    "naive_root",
    "root_hash",
]

_sha256 = hashlib.sha256

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
        if size & 1:  # an odd size completes no subtree: half the leaves
            levels.append(0)
            hashes.append(leaf)
            return []
        new_nodes: list[tuple[int, int, bytes]] = []
        # The new leaf completes one subtree per trailing zero bit of the new size.
        level, digest = 0, leaf
        while not size >> level & 1:
            levels.pop()
            # node = SHA-256(0x01 || left || right), RFC 9162 2.1.1 (node_hash, inlined)
            digest = _sha256(NODE_HASH_PREFIX + hashes.pop() + digest).digest()
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


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} has {len(value)} bytes, expected {HASH_SIZE}")


def naive_root(leaves: Sequence[bytes]) -> bytes:
    """MTH by the recursive definition of RFC 9162 2.1.1 (for tests and small bundles)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))
