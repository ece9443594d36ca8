"""Sealed payloads: the byte layout of docs/FORMAT.md section 3.4 and its associated data.

Stored bytes = ``MAGIC`` (4 bytes ``00 41 45 01``) || nonce (12 bytes) || AES-256-GCM
ciphertext || tag (16 bytes). The nonce is the record's ``seq`` as a 96-bit big-endian integer:
a data key seals the records of one request of one log, whose ``seq`` values are distinct, so a
(key, nonce) pair is never reused. Associated data = canonical JSON
``{"log", "request_id", "seq"}`` of the record, so a ciphertext moved to another record, log or
request fails to open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditlog.errors import KeyUnavailableError

if TYPE_CHECKING:
    from auditlog.crypto.keyring import KeyProvider

__all__ = [
    "ENCRYPTION_ALG",
    "MAGIC",
    "DataKey",
    "PayloadSealer",
    "RequestSealer",
    "is_sealed",
    "open_payload",
    "wrapped_digest",
]

#: ``alg`` of a ``request.start`` header's ``enc`` member.
ENCRYPTION_ALG: Final = "A256GCM"
#: First bytes of a sealed payload: 0x00 makes it unparseable as JSON (opaque to a verifier).
MAGIC: Final = b"\x00AE\x01"
_NONCE = 12
_TAG = 16


@dataclass(frozen=True, slots=True)
class DataKey:
    """A request's wrapped data key as stored in ``data_keys`` (never the clear key)."""

    request_id: str
    tenant: str
    kek_id: str
    wrapped: bytes


def wrapped_digest(wrapped: bytes) -> str:
    """Hex SHA-256 of a wrapped data key: the ``enc.dek`` commitment of ``request.start``."""
    return hashlib.sha256(wrapped).hexdigest()


def associated_data(log: str, seq: int, request_id: str) -> bytes:
    """Canonical JSON of the record's position (RFC 8785: sorted keys, no whitespace)."""
    return orjson.dumps(
        {"log": log, "request_id": request_id, "seq": seq}, option=orjson.OPT_SORT_KEYS
    )


def is_sealed(data: bytes) -> bool:
    """True if ``data`` has the sealed-payload layout (not that it opens)."""
    return data[:4] == MAGIC and len(data) >= len(MAGIC) + _NONCE + _TAG


class RequestSealer:
    """Seals the payloads of one request with its data key (held in memory while it runs)."""

    __slots__ = ("_encrypt", "_prefix")

    def __init__(self, dek: bytes, log: str, request_id: str) -> None:
        self._encrypt = AESGCM(dek).encrypt
        # associated_data(log, seq, request_id) = prefix || decimal seq || "}"
        self._prefix = associated_data(log, 0, request_id)[:-2]

    def seal(self, seq: int, plaintext: bytes) -> bytes:
        nonce = seq.to_bytes(_NONCE, "big")
        aad = self._prefix + str(seq).encode() + b"}"
        return MAGIC + nonce + self._encrypt(nonce, plaintext, aad)


class PayloadSealer:
    """Creates per-request data keys, wrapped by the tenant's KEK through a key provider."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    def new_request(self, log: str, request_id: str, tenant: str) -> tuple[RequestSealer, DataKey]:
        """A fresh 256-bit data key for one request: its sealer and its wrapped form."""
        dek = AESGCM.generate_key(bit_length=256)
        kek_id = self.provider.kek_id(tenant)
        wrapped = self.provider.wrap(kek_id, dek)
        return RequestSealer(dek, log, request_id), DataKey(request_id, tenant, kek_id, wrapped)


def open_payload(provider: KeyProvider, key: DataKey, *, log: str, seq: int, data: bytes) -> bytes:
    """Unwrap ``key`` with the provider and open the sealed payload of record ``seq`` of ``log``.

    Raises :class:`KeyUnavailableError` when the KEK is not held, the wrapped key does not
    unwrap, or the ciphertext does not open under this record's associated data.
    """
    if not is_sealed(data):
        raise KeyUnavailableError(f"record {seq} of {log}: payload is not sealed")
    dek = provider.unwrap(key.kek_id, key.wrapped)
    nonce, body = data[4 : 4 + _NONCE], data[4 + _NONCE :]
    try:
        return AESGCM(dek).decrypt(nonce, body, associated_data(log, seq, key.request_id))
    except InvalidTag:
        raise KeyUnavailableError(
            f"record {seq} of {log}: payload does not open with request {key.request_id!r}'s key"
        ) from None
