"""RFC 9162 Merkle tree over a persisted store: frontier, roots, proofs and their verification.

Hand-written on purpose: no maintained Python library computes RFC 9162 inclusion and
consistency proofs from subtree hashes kept in a database (they either hold the whole tree in
memory or implement RFC 6962 verification only), and the verifier must be auditable line by line.

This module is the tree's public face; each concept has its own home:
:mod:`auditlog.ledger.merkle_tree` (storage layout, node reads, the frontier, roots),
:mod:`auditlog.ledger.merkle_proofs` (building proofs, one or many of one tree at once) and
:mod:`auditlog.ledger.merkle_verify` (checking proofs).
"""

from __future__ import annotations

from auditlog.ledger.merkle_proofs import consistency_proof, inclusion_proof, inclusion_proofs
from auditlog.ledger.merkle_tree import (
    NODE_LEVEL_STRIDE,
    MemoryNodeSource,
    MerkleFrontier,
    NodeSource,
    naive_root,
    root_hash,
)
from auditlog.ledger.merkle_verify import verify_consistency, verify_inclusion

__all__ = [
    "NODE_LEVEL_STRIDE",
    "MemoryNodeSource",
    "MerkleFrontier",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "naive_root",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]
