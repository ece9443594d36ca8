"""Merkle frontier, persisted-node proofs and their verification (RFC 9162 2.1)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import VerificationError
from auditlog.ledger.hashes import EMPTY_ROOT, leaf_hash, node_hash
from auditlog.ledger.merkle import (
    NODE_LEVEL_STRIDE,
    MemoryNodeSource,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    naive_root,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"record %d" % i) for i in range(n)]


def _source(n: int) -> tuple[list[bytes], MemoryNodeSource]:
    leaves = _leaves(n)
    source = MemoryNodeSource()
    for leaf in leaves:
        source.append(leaf)
    return leaves, source


_LEAVES, _SOURCE = _source(MAX_SIZE)
_ROOTS = [naive_root(_LEAVES[:n]) for n in range(MAX_SIZE + 1)]


def test_hash_constructions() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_frontier_root_matches_recursive_mth_for_every_size() -> None:
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(_LEAVES, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == _ROOTS[n], f"size {n}"
        assert root_hash(n, _SOURCE) == _ROOTS[n], f"size {n}"


def test_append_reports_persisted_nodes_only() -> None:
    frontier = MerkleFrontier()
    reported = []
    for leaf in _leaves(256):
        reported.extend(frontier.append(leaf))
    assert [(level, index) for level, index, _ in reported] == [(4, i) for i in range(15)] + [
        (4, 15),
        (8, 0),
    ]
    assert all(level % NODE_LEVEL_STRIDE == 0 and level > 0 for level, _, _ in reported)
    assert reported[-1][2] == naive_root(_leaves(256))
    assert reported[0][2] == naive_root(_leaves(16))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 15, 16, 17, 31, 255, 256, 257, MAX_SIZE])
def test_restore_reproduces_the_frontier(size: int) -> None:
    grown = MerkleFrontier()
    for leaf in _LEAVES[:size]:
        grown.append(leaf)
    restored = MerkleFrontier.restore(size, _SOURCE)
    assert restored.size == size and restored.root() == grown.root()
    # and it keeps growing identically
    extra = leaf_hash(b"next")
    assert restored.append(extra) == grown.append(extra)
    assert restored.root() == grown.root()


@given(st.integers(1, MAX_SIZE).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
@settings(max_examples=400, deadline=None)
def test_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    proof = inclusion_proof(index, size, _SOURCE)
    verify_inclusion(_LEAVES[index], index, size, proof, _ROOTS[size])


@given(st.integers(1, MAX_SIZE).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
@settings(max_examples=400, deadline=None)
def test_consistency_proofs_verify(case: tuple[int, int]) -> None:
    size1, size2 = case
    proof = consistency_proof(size1, size2, _SOURCE)
    verify_consistency(size1, size2, proof, _ROOTS[size1], _ROOTS[size2])


def test_every_proof_up_to_64_verifies() -> None:
    for size in range(1, 65):
        for index in range(size):
            verify_inclusion(
                _LEAVES[index], index, size, inclusion_proof(index, size, _SOURCE), _ROOTS[size]
            )
        for size1 in range(1, size + 1):
            verify_consistency(
                size1, size, consistency_proof(size1, size, _SOURCE), _ROOTS[size1], _ROOTS[size]
            )


@given(
    st.integers(2, MAX_SIZE).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_tampered_inclusion_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    proof = inclusion_proof(index, size, _SOURCE)
    with pytest.raises(VerificationError, match=r"does not lead to the root|wrong size"):
        verify_inclusion(_LEAVES[index], index, size, proof, _ROOTS[size - 1] if size > 1 else b"x")
    with pytest.raises(VerificationError):
        verify_inclusion(_LEAVES[(index + 1) % size], index, size, proof, _ROOTS[size])
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    with pytest.raises(VerificationError):
        verify_inclusion(_LEAVES[index], other, size, proof, _ROOTS[size])
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(proof[k])
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad = [*proof[:k], bytes(flipped), *proof[k + 1 :]]
        with pytest.raises(VerificationError, match="does not lead to the root"):
            verify_inclusion(_LEAVES[index], index, size, bad, _ROOTS[size])
        with pytest.raises(VerificationError):
            verify_inclusion(_LEAVES[index], index, size, proof[:-1], _ROOTS[size])
    with pytest.raises(VerificationError):
        verify_inclusion(_LEAVES[index], index, size, [*proof, _ROOTS[size]], _ROOTS[size])


@given(
    st.integers(2, MAX_SIZE).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_tampered_consistency_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = case
    proof = consistency_proof(size1, size2, _SOURCE)
    root1, root2 = _ROOTS[size1], _ROOTS[size2]
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, root2, root1)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, root1, _ROOTS[size2 - 1])
    k = data.draw(st.integers(0, len(proof) - 1))
    flipped = bytearray(proof[k])
    flipped[data.draw(st.integers(0, 31))] ^= 0x80
    with pytest.raises(VerificationError):
        verify_consistency(
            size1, size2, [*proof[:k], bytes(flipped), *proof[k + 1 :]], root1, root2
        )
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, [*proof, root2], root1, root2)


def test_messages_name_expected_and_actual() -> None:
    proof = inclusion_proof(3, 8, _SOURCE)
    with pytest.raises(VerificationError, match=f"expected {_ROOTS[7].hex()}, computed"):
        verify_inclusion(_LEAVES[3], 3, 8, proof, _ROOTS[7])
    with pytest.raises(VerificationError, match="leaf index 8 is outside a tree of size 8"):
        verify_inclusion(_LEAVES[3], 8, 8, proof, _ROOTS[8])
    with pytest.raises(VerificationError, match="consistency with the empty tree"):
        verify_consistency(0, 8, [], EMPTY_ROOT, _ROOTS[8])


def test_source_that_lies_about_its_size_is_caught() -> None:
    with pytest.raises(VerificationError, match="node store returned 0 hashes"):
        root_hash(MAX_SIZE + 5, _SOURCE)
