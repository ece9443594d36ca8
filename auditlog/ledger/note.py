"""C2SP signed notes with Ed25519 keys (https://c2sp.org/signed-note; Go's sumdb/note).

A note is UTF-8 text, a blank line, and one or more signature lines::

    <text, one or more non-empty lines, each ending in "\\n">
    <blank line>
    — <key name> <base64(4-byte key id || signature)>\\n      (em dash U+2014, then a space)

key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]; 0x01 is the Ed25519 algorithm byte.
The signature is Ed25519 over the text bytes (everything before the blank line, final newline
included). Key strings:

* verifier key: ``<name>+<8 hex digits of key id>+<base64(0x01 || 32-byte public key)>``
* private key:  ``PRIVATE+KEY+<name>+<8 hex digits of key id>+<base64(0x01 || 32-byte seed)>``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditlog.errors import FormatError, VerificationError

__all__ = [
    "ALG_ED25519",
    "SIGNATURE_PREFIX",
    "OpenedNote",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "sign_note",
    "split_note",
]

#: Algorithm byte of Ed25519 keys in key ids and key strings (C2SP signed-note).
ALG_ED25519 = b"\x01"
#: Start of every signature line: em dash (U+2014) and a space.
SIGNATURE_PREFIX = "\u2014 "
#: Most signature lines accepted on one note (as Go's sumdb/note).
MAX_SIGNATURES = 100

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64


def key_id(name: str, public_key: bytes) -> bytes:
    """4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4] (C2SP signed-note)."""
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    # A key name is non-empty UTF-8 with no whitespace and no "+" (C2SP signed-note).
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise FormatError(f"invalid key name {name!r}: must be non-empty, no spaces, no '+'")


def _b64decode_strict(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64: {text!r}") from None
    if base64.b64encode(raw).decode() != text:
        raise FormatError(f"{what} is not canonical base64: {text!r}")
    return raw


def _parse_key_string(fields: list[str], what: str) -> tuple[str, bytes, bytes]:
    """(name, key id, 32-byte key) from ``[name, hex id, base64(0x01 || key)]``."""
    name, hex_id, b64 = fields
    _check_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise FormatError(f"{what}: key id must be 8 lowercase hex digits, got {hex_id!r}")
    raw = _b64decode_strict(b64, what)
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[:1] != ALG_ED25519:
        raise FormatError(f"{what}: expected 0x01 and a 32-byte Ed25519 key, got {len(raw)} bytes")
    return name, bytes.fromhex(hex_id), raw[1:]


@dataclass(frozen=True, slots=True)
class Verifier:
    """A trusted public key: name, 4-byte key id, Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_key_string(cls, key: str) -> Verifier:
        """Parse ``<name>+<hex id>+<base64(0x01 || public key)>``; the id MUST match the key."""
        fields = key.split("+", 2)  # the base64 part may itself contain '+'
        if len(fields) != 3:
            raise FormatError(f"verifier key must have 3 '+'-separated fields: {key!r}")
        name, kid, public_key = _parse_key_string(fields, "verifier key")
        if key_id(name, public_key) != kid:
            raise FormatError(
                f"verifier key id mismatch: expected {key_id(name, public_key).hex()}, "
                f"got {kid.hex()}"
            )
        return cls(name=name, key_id=kid, public_key=public_key)

    @property
    def key_string(self) -> str:
        b64 = base64.b64encode(ALG_ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 signing key with its note name (keep the private key string secret)."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, *, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != _ED25519_KEY_SIZE:
            raise FormatError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        self.name = name
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key (from the operating system's CSPRNG)."""
        seed = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(name=name, seed=seed)

    def renamed(self, name: str) -> Signer:
        """The same private key under another note name (a key is bound to the log named like
        it, docs/TRUST.md): for a companion log, such as the request-level ``<origin>/http`` log
        of the vLLM middleware, whose verifier key is then ``renamed(name).verifier_key``."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return Signer(name=name, seed=seed)

    @classmethod
    def from_key_string(cls, key: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``."""
        if not key.startswith(_PRIVATE_PREFIX):
            raise FormatError("private key string must start with 'PRIVATE+KEY+'")
        # Split on the first two '+' after the prefix only: base64 may itself contain '+'.
        fields = key[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(fields) != 3:
            raise FormatError("private key string must have name, key id and key fields")
        name, kid, seed = _parse_key_string(fields, "private key")
        signer = cls(name=name, seed=seed)
        if signer.key_id != kid:
            raise FormatError(
                f"private key id mismatch: expected {signer.key_id.hex()}, got {kid.hex()}"
            )
        return signer

    @property
    def key_string(self) -> str:
        """The private key string (secret)."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        b64 = base64.b64encode(ALG_ED25519 + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{b64}"

    @property
    def verifier(self) -> Verifier:
        return Verifier(name=self.name, key_id=self.key_id, public_key=self.public_key)

    @property
    def verifier_key(self) -> str:
        """The public verifier key string ``<name>+<hex id>+<base64(0x01 || public key)>``."""
        return self.verifier.key_string

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()})"


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose signatures were checked: its text and the trusted keys that signed it."""

    text: str
    signed_by: tuple[Verifier, ...]
    unknown_signers: tuple[str, ...]  # "<name>+<hex id>" of signatures by keys not trusted


def _check_text(text: str) -> None:
    """Note text: non-empty, ends in a newline, no blank line, no control character but
    newline (C2SP signed-note), valid UTF-8."""
    if not text or not text.endswith("\n"):
        raise FormatError("note text must be non-empty and end with a newline")
    if text.startswith("\n") or "\n\n" in text:
        raise FormatError("note text must not contain a blank line")
    if any(ch < " " and ch != "\n" for ch in text):
        raise FormatError("note text must not contain control characters other than newline")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise FormatError("note text is not valid UTF-8") from None


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` with every signer; returns the note (text, blank line, signature lines)."""
    _check_text(text)
    if not signers:
        raise FormatError("a note needs at least one signer")
    message = text.encode()
    lines = []
    for signer in signers:
        # signature line = "— " name " " base64(key id || Ed25519(text)) "\n"
        sig = base64.b64encode(signer.key_id + signer.sign(message)).decode()
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {sig}\n")
    return text + "\n" + "".join(lines)


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Parse a note strictly without checking signatures: ``(text, [(name, key id, sig)])``."""
    if "\n\n" not in note:
        raise FormatError("note has no blank line before its signatures")
    split = note.rindex("\n\n")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    if not block or not block.endswith("\n"):
        raise FormatError("note signature block must be non-empty and end with a newline")
    signatures: list[tuple[str, bytes, bytes]] = []
    for number, line in enumerate(block[:-1].split("\n"), start=1):
        if number > MAX_SIGNATURES:
            raise FormatError(f"note has more than {MAX_SIGNATURES} signatures")
        if not line.startswith(SIGNATURE_PREFIX):
            raise FormatError(f"note signature line {number} does not start with '— ': {line!r}")
        name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep:
            raise FormatError(f"note signature line {number} has no signature: {line!r}")
        _check_name(name)
        raw = _b64decode_strict(b64, f"signature line {number}")
        if len(raw) < 5:
            raise FormatError(f"signature line {number} is too short: {len(raw)} bytes")
        signatures.append((name, raw[:4], raw[4:]))
    return text, signatures


def open_note(note: str, verifiers: Iterable[Verifier]) -> OpenedNote:
    """Parse ``note`` and check its signatures against the trusted ``verifiers``.

    Signatures by unknown keys are ignored (and listed). Raises :class:`VerificationError` if a
    trusted key's signature is bad or if no trusted key signed; :class:`FormatError` if the note
    is malformed.
    """
    text, signatures = split_note(note)
    trusted = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode()
    signed_by: list[Verifier] = []
    unknown: list[str] = []
    for name, kid, sig in signatures:
        verifier = trusted.get((name, kid))
        if verifier is None:
            unknown.append(f"{name}+{kid.hex()}")
            continue
        if not verifier.verify(message, sig):
            raise VerificationError(f"bad signature by trusted key {name}+{kid.hex()}")
        if verifier not in signed_by:
            signed_by.append(verifier)
    if not signed_by:
        trusted_ids = ", ".join(sorted(f"{name}+{kid.hex()}" for name, kid in trusted))
        raise VerificationError(
            f"note has no signature by a trusted key: signed by [{', '.join(unknown)}], "
            f"trusted [{trusted_ids}]"
        )
    return OpenedNote(text=text, signed_by=tuple(signed_by), unknown_signers=tuple(unknown))
