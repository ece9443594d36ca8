"""Joining ranges through the Merkle frontier (docs/FORMAT.md 7.1; C8): appending the perfect
subtrees of aligned ranges gives the RFC 9162 root and the persisted nodes of appending leaves."""

from __future__ import annotations

import hashlib

import pytest

from auditlog.errors import VerificationError
from auditlog.ledger import MerkleFrontier
from auditlog.ledger.merkle import naive_root


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("width_level", [0, 2, 4, 5])
def test_ranges_joined_by_subtrees_match_leaf_by_leaf(width_level: int) -> None:
    width = 1 << width_level
    for n in range(1, 300, 7):
        leaves = _leaves(n)
        whole, nodes = MerkleFrontier(), []
        for leaf in leaves:
            nodes.extend(whole.append(leaf))
        joined, joined_nodes = MerkleFrontier(), []
        for start in range(0, n, width):
            part = MerkleFrontier()
            for leaf in leaves[start : start + width]:
                joined_nodes.extend(
                    (level, (start >> level) + idx, digest)
                    for level, idx, digest in part.append(leaf)
                )
            for level, digest in part.subtrees():
                joined_nodes.extend(joined.append_subtree(level, digest))
        assert joined.root() == whole.root() == naive_root(leaves)
        assert sorted(joined_nodes) == sorted(nodes)
        again = MerkleFrontier.from_subtrees(whole.subtrees())
        assert (again.size, again.root()) == (n, whole.root())
        assert whole.copy().root() == whole.root()


def test_subtree_must_be_aligned() -> None:
    frontier = MerkleFrontier()
    frontier.append(_leaves(1)[0])
    with pytest.raises(VerificationError):
        frontier.append_subtree(1, _leaves(1)[0])
