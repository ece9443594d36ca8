"""Encryption at rest of payloads (C16): envelope encryption and key providers.

Each request gets a fresh AES-256 data key (DEK); every payload of the request is sealed with it
(AES-256-GCM, associated data = log, seq, request id). The DEK is wrapped by the tenant's
key-encryption key (KEK) held by a :class:`KeyProvider` and stored, wrapped, in the ``data_keys``
table; destroying that row erases the request's content (crypto-shredding, C16). The ledger
hashes the ciphertext only (docs/FORMAT.md section 3.4).
"""

from __future__ import annotations

from auditlog.crypto.envelope import (
    ENCRYPTION_ALG,
    DataKey,
    PayloadSealer,
    is_sealed,
    open_payload,
    wrapped_digest,
)
from auditlog.crypto.keyring import (
    KeyProvider,
    LocalKeyring,
    create_keyring,
    export_tenant,
    open_keyring,
)

__all__ = [
    "ENCRYPTION_ALG",
    "DataKey",
    "KeyProvider",
    "LocalKeyring",
    "PayloadSealer",
    "create_keyring",
    "export_tenant",
    "is_sealed",
    "open_keyring",
    "open_payload",
    "wrapped_digest",
]
