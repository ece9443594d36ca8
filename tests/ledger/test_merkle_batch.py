"""Batch inclusion proofs (a trail's or a bundle's, C20) equal one-by-one RFC 9162 proofs."""

from __future__ import annotations

from collections.abc import Sequence
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import VerificationError
from auditlog.ledger import merkle_proofs
from auditlog.ledger.hashes import leaf_hash
from auditlog.ledger.merkle import MemoryNodeSource, inclusion_proof, naive_root, verify_inclusion
from auditlog.ledger.merkle_proofs import inclusion_proofs

MAX_SIZE = 300  # persisted levels 0, 4 and 8


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"batch record %d" % i) for i in range(n)]


_LEAVES = _leaves(MAX_SIZE)
_SOURCE = MemoryNodeSource()
for _leaf in _LEAVES:
    _SOURCE.append(_leaf)


class CountingSource:
    """A node source that counts ``get_nodes`` calls and the hashes they return."""

    def __init__(self, inner: MemoryNodeSource) -> None:
        self.inner = inner
        self.calls = 0
        self.rows = 0
        self.read: list[tuple[int, int]] = []  # (level, index) of every hash returned

    def get_nodes(self, level: int, start: int, stop: int) -> Sequence[bytes]:
        nodes = self.inner.get_nodes(level, start, stop)
        self.calls += 1
        self.rows += len(nodes)
        self.read.extend((level, i) for i in range(start, start + len(nodes)))
        return nodes


@st.composite
def _tree_and_indices(draw: st.DrawFn) -> tuple[int, list[int]]:
    size = draw(st.integers(1, MAX_SIZE))
    indices = draw(st.lists(st.integers(0, size - 1), max_size=40))
    return size, indices


@settings(max_examples=300, deadline=None)
@given(_tree_and_indices())
def test_batch_equals_one_by_one_and_verifies(case: tuple[int, list[int]]) -> None:
    size, indices = case
    root = naive_root(_LEAVES[:size])
    counting = CountingSource(_SOURCE)
    # The blocks read up front cover every path: the one-subtree fallback is never needed.
    with mock.patch.object(merkle_proofs, "_subtree", side_effect=AssertionError("fallback")):
        proofs = inclusion_proofs(indices, size, counting)
    assert proofs == [inclusion_proof(i, size, _SOURCE) for i in indices]
    assert len(counting.read) == len(set(counting.read)), "a hash was read twice"
    for index, proof in zip(indices, proofs, strict=True):
        verify_inclusion(_LEAVES[index], index, size, proof, root)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, MAX_SIZE), st.integers(0, MAX_SIZE - 1), st.integers(1, 80))
def test_batch_of_a_contiguous_span_equals_one_by_one(size: int, first: int, count: int) -> None:
    # A trail's records are close together: contiguous and interleaved spans share most hashes.
    indices = [i for i in range(first, first + count) if i < size]
    assert inclusion_proofs(indices, size, _SOURCE) == [
        inclusion_proof(i, size, _SOURCE) for i in indices
    ]
    interleaved = indices[::3]
    assert inclusion_proofs(interleaved, size, _SOURCE) == [
        inclusion_proof(i, size, _SOURCE) for i in interleaved
    ]


def test_every_index_of_every_size_up_to_64() -> None:
    for size in range(1, 65):
        indices = list(range(size))
        expected = [inclusion_proof(i, size, _SOURCE) for i in indices]
        assert inclusion_proofs(indices, size, _SOURCE) == expected, f"size {size}"


def test_duplicates_order_and_empty_batch_are_kept() -> None:
    indices = [7, 3, 7, 299, 0, 3]
    assert inclusion_proofs(indices, MAX_SIZE, _SOURCE) == [
        inclusion_proof(i, MAX_SIZE, _SOURCE) for i in indices
    ]
    counting = CountingSource(_SOURCE)
    assert inclusion_proofs([], MAX_SIZE, counting) == []
    assert counting.calls == 0


@pytest.mark.parametrize("bad", [-1, MAX_SIZE, MAX_SIZE + 5])
def test_index_outside_the_tree_fails_before_any_read(bad: int) -> None:
    counting = CountingSource(_SOURCE)
    with pytest.raises(VerificationError, match=rf"leaf index {bad} is outside a tree of size"):
        inclusion_proofs([0, 1, bad, 2], MAX_SIZE, counting)
    assert counting.calls == 0


def test_tampered_batch_proof_fails_verification() -> None:
    # C8: a batch proof is an ordinary RFC 9162 proof; flipping one hash breaks it.
    size, index = 257, 130
    proof = inclusion_proofs([index], size, _SOURCE)[0]
    tampered = [proof[0], bytes([proof[1][0] ^ 1]) + proof[1][1:], *proof[2:]]
    with pytest.raises(VerificationError, match="does not lead to the root"):
        verify_inclusion(_LEAVES[index], index, size, tampered, naive_root(_LEAVES[:size]))


def test_a_subtree_outside_the_blocks_read_is_still_right() -> None:
    # The fallback path (one subtree read and folded on its own) gives the same hashes.
    hasher = merkle_proofs._BatchHasher(_SOURCE, MAX_SIZE, [0])
    for level, index in [(0, 299), (3, 20), (5, 7), (8, 0)]:
        assert hasher.subtree(level, index) == naive_root(
            _LEAVES[index << level : (index + 1) << level]
        )


def test_short_store_is_reported() -> None:
    class ShortSource:
        def get_nodes(self, level: int, start: int, stop: int) -> Sequence[bytes]:
            return _SOURCE.get_nodes(level, start, stop)[:-1]

    with pytest.raises(VerificationError, match=r"node store returned \d+ hashes for level 0"):
        inclusion_proofs([5], 64, ShortSource())


def test_batch_reads_far_less_than_the_loop() -> None:
    # A trail of 120 records interleaved with other requests' records (every other seq).
    indices = list(range(40, 280, 2))
    loop, batch = CountingSource(_SOURCE), CountingSource(_SOURCE)
    expected = [inclusion_proof(i, MAX_SIZE, loop) for i in indices]
    assert inclusion_proofs(indices, MAX_SIZE, batch) == expected
    # One merged range read per persisted level (0, 4 and 8 in a tree of 300) at most.
    assert batch.calls <= 3, batch.calls
    assert batch.rows <= MAX_SIZE, batch.rows
    assert loop.calls >= 100 * batch.calls, (loop.calls, batch.calls)
    assert loop.rows >= 10 * batch.rows, (loop.rows, batch.rows)
