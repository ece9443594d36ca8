"""SHA-256 hashing of the log (RFC 9162 section 2.1.1; C13: SHA-256 only on the integrity path).

These functions are for the audit log alone; a cache key or any other hash MUST NOT reuse them.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_HASH_PREFIX",
    "NODE_HASH_PREFIX",
    "leaf_hash",
    "node_hash",
    "sha256_hex",
]

#: Domain separation byte of leaf hashes (RFC 9162 section 2.1.1).
LEAF_HASH_PREFIX = b"\x00"
#: Domain separation byte of interior node hashes (RFC 9162 section 2.1.1).
NODE_HASH_PREFIX = b"\x01"
#: Length in bytes of every hash in the log.
HASH_SIZE = 32
#: Root of the empty tree: MTH({}) = SHA-256() (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Leaf hash of a record: SHA-256(0x00 || record bytes), RFC 9162 2.1.1."""
    return _sha256(LEAF_HASH_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right), RFC 9162 2.1.1."""
    return _sha256(NODE_HASH_PREFIX + left + right).digest()


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data`` (the header's ``payload`` digest)."""
    return _sha256(data).hexdigest()
