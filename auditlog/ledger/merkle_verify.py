"""Verification of RFC 9162 inclusion and consistency proofs (2.1.3.2, 2.1.4.2).

Pure functions over the proof hashes, written step by step after the RFC so that they can be
audited line by line; they read no store.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditlog.errors import VerificationError
from auditlog.ledger.hashes import EMPTY_ROOT, node_hash
from auditlog.ledger.merkle_tree import _check_hash

__all__ = ["verify_consistency", "verify_inclusion"]


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
