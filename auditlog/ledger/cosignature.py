"""Checkpoint cosignatures: C2SP tlog-cosignature ``cosignature/v1`` with Ed25519.

A witness (a cosigner) that checked a checkpoint's consistency with what it saw before signs::

    cosignature/v1\\n
    time <POSIX seconds, decimal>\\n
    <the checkpoint body, exactly as the log signed it>

Its signature line on the checkpoint note is

    — <cosigner name> base64(key id (4) || timestamp (8, big-endian) || Ed25519 signature (64))

with key id = SHA-256(name || 0x0A || 0x04 || public key)[:4] (0x04: the cosignature/v1 type
byte). Cosigner verifier keys read ``<name>+<8 hex digits of key id>+<base64(0x04 || key)>``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditlog.errors import FormatError
from auditlog.ledger.note import SIGNATURE_PREFIX, _b64decode_strict, _check_name

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "CosignerKey",
    "cosignature_key_id",
    "cosignature_message",
    "cosigned_note",
    "note_cosignatures",
    "parse_cosignature_line",
    "without_cosignatures",
]

#: Type byte of Ed25519 cosignature/v1 keys in key ids and verifier keys.
COSIGNATURE_TYPE = b"\x04"
_LABEL = "cosignature/v1"
_KEY_SIZE = 32
_SIG_SIZE = 64
_BLOB_SIZE = 4 + 8 + _SIG_SIZE


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """4-byte key id of a cosigner: SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public_key).digest()[:4]


def cosignature_message(timestamp: int, checkpoint_body: str) -> bytes:
    """The bytes a cosignature/v1 signs: label, ``time`` line, then the checkpoint body."""
    if not 0 <= timestamp < 2**64:
        raise FormatError(f"cosignature timestamp out of range: {timestamp}")
    if not checkpoint_body.endswith("\n"):
        raise FormatError("checkpoint body must end with a newline")
    return f"{_LABEL}\ntime {timestamp}\n{checkpoint_body}".encode()


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A witness's public key: name, 4-byte key id and Ed25519 key (type 0x04)."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_key_string(cls, key: str) -> CosignerKey:
        """Parse ``<name>+<hex id>+<base64(0x04 || key)>``; the id MUST match the key."""
        fields = key.strip().split("+", 2)
        if len(fields) != 3:
            raise FormatError(f"witness key must have 3 '+'-separated fields: {key!r}")
        name, hex_id, b64 = fields
        _check_name(name)
        raw = _b64decode_strict(b64, "witness key")
        if len(raw) != 1 + _KEY_SIZE or raw[:1] != COSIGNATURE_TYPE:
            raise FormatError(
                f"witness key must be 0x04 (Ed25519 cosignature/v1) and a 32-byte key: {key!r}"
            )
        public_key = raw[1:]
        expected = cosignature_key_id(name, public_key)
        if hex_id != expected.hex():
            raise FormatError(f"witness key id mismatch: expected {expected.hex()}, got {hex_id}")
        return cls(name=name, key_id=expected, public_key=public_key)

    @property
    def key_string(self) -> str:
        b64 = base64.b64encode(COSIGNATURE_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def verify(self, cosignature: Cosignature, checkpoint_body: str) -> bool:
        """True if ``cosignature`` is this key's cosignature/v1 of ``checkpoint_body``."""
        if (cosignature.name, cosignature.key_id) != (self.name, self.key_id):
            return False
        message = cosignature_message(cosignature.timestamp, checkpoint_body)
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                cosignature.signature, message
            )
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One cosignature/v1: who (name, key id), when (POSIX seconds) and the signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def line(self) -> str:
        """The note signature line (with its newline)."""
        blob = self.key_id + self.timestamp.to_bytes(8, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


def parse_cosignature_line(line: str) -> Cosignature:
    """Parse one ``— <name> <base64>`` line holding a cosignature/v1 (72-byte blob + key id)."""
    line = line.removesuffix("\n")
    if not line.startswith(SIGNATURE_PREFIX):
        raise FormatError(f"cosignature line does not start with '— ': {line!r}")
    name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep:
        raise FormatError(f"cosignature line has no signature: {line!r}")
    _check_name(name)
    raw = _b64decode_strict(b64, "cosignature")
    if len(raw) != _BLOB_SIZE:
        raise FormatError(f"a cosignature/v1 is {_BLOB_SIZE} bytes with its key id, not {len(raw)}")
    return Cosignature(
        name=name,
        key_id=raw[:4],
        timestamp=int.from_bytes(raw[4:12], "big"),
        signature=raw[12:],
    )


def cosigned_note(note: str, cosigs: list[Cosignature]) -> str:
    """``note`` with the cosignature lines appended (C2SP: a cosigned checkpoint is the log's
    note with one more signature line per witness); lines already on it are not repeated."""
    present = set(note.splitlines())
    extra = [c.line for c in sorted(cosigs, key=lambda c: (c.name, c.key_id))]
    return note + "".join(line for line in extra if line.rstrip("\n") not in present)


def note_cosignatures(note: str) -> list[Cosignature]:
    """The cosignature/v1 lines of a note (other signature lines, the log's, are skipped)."""
    block = note[note.rindex("\n\n") + 2 :] if "\n\n" in note else ""
    found = []
    for line in block.splitlines():
        try:
            found.append(parse_cosignature_line(line))
        except FormatError:
            continue
    return found


def without_cosignatures(note: str) -> str:
    """``note`` with its cosignature/v1 lines removed: the log's note as signed and stored (the
    inverse of :func:`cosigned_note`; what an RFC 3161 timestamp of the checkpoint covers)."""
    if "\n\n" not in note:
        return note
    cut = note.rindex("\n\n") + 2
    kept = []
    for line in note[cut:].splitlines(keepends=True):
        try:
            parse_cosignature_line(line)
        except FormatError:
            kept.append(line)
    return note[:cut] + "".join(kept)
