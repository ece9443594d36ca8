"""The integrity core of auditlog: canonical bytes, records, RFC 9162 Merkle tree, C2SP signed
notes and checkpoints, witness files and the verifier (docs/FORMAT.md). Pure functions; the only
I/O is :class:`DirectoryWitness`."""

from __future__ import annotations

from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from auditlog.ledger.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from auditlog.ledger.hashes import (
    EMPTY_ROOT,
    LEAF_HASH_PREFIX,
    NODE_HASH_PREFIX,
    leaf_hash,
    node_hash,
    sha256_hex,
)
from auditlog.ledger.header_parse import parse_header
from auditlog.ledger.merkle_proofs import consistency_proof, inclusion_proof, inclusion_proofs
from auditlog.ledger.merkle_tree import (
    NODE_LEVEL_STRIDE,
    MemoryNodeSource,
    MerkleFrontier,
    NodeSource,
    root_hash,
)
from auditlog.ledger.merkle_verify import verify_consistency, verify_inclusion
from auditlog.ledger.note import OpenedNote, Signer, Verifier, key_id, open_note, sign_note
from auditlog.ledger.record_format import (
    FORMAT_VERSION,
    PROVENANCE_CODES,
    REQUEST_KINDS,
    ZERO_HASH,
    RecordKind,
)
from auditlog.ledger.records import Record, build_record, payload_bytes
from auditlog.ledger.verify import (
    Finding,
    FindingCode,
    Report,
    Severity,
    StoredRecord,
    verify_log,
)
from auditlog.ledger.witness import DirectoryWitness

__all__ = [
    "EMPTY_ROOT",
    "FORMAT_VERSION",
    "LEAF_HASH_PREFIX",
    "MAX_SAFE_INTEGER",
    "NODE_HASH_PREFIX",
    "NODE_LEVEL_STRIDE",
    "PROVENANCE_CODES",
    "REQUEST_KINDS",
    "ZERO_HASH",
    "Checkpoint",
    "DirectoryWitness",
    "Finding",
    "FindingCode",
    "MemoryNodeSource",
    "MerkleFrontier",
    "NodeSource",
    "OpenedNote",
    "Record",
    "RecordKind",
    "Report",
    "Severity",
    "Signer",
    "StoredRecord",
    "Verifier",
    "build_record",
    "canonical_json",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_header",
    "payload_bytes",
    "root_hash",
    "sha256_hex",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
