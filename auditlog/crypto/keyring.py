"""Key-encryption keys: the :class:`KeyProvider` interface and the local keyring file.

A provider wraps and unwraps data keys *by key id* and never hands out a KEK, so a KMS or an HSM
fits it: ``kek_id(tenant)`` names the tenant's current KMS key (an ARN, a PKCS#11 label),
``wrap`` calls the KMS's Encrypt (or an HSM's C_WrapKey), ``unwrap`` its Decrypt (C_UnwrapKey).
KEKs never touch the database; only wrapped data keys and KEK ids do.

The local keyring is a JSON file (mode 0600, checked on load)::

    {"format": "auditlog-keyring", "v": 1, "master": <base64 32 bytes> | null,
     "tenants": {"<tenant>": <base64 32 bytes>, ...}}

A tenant's KEK is its own entry, else HKDF-SHA256(master, info = "auditlog kek v1\\n" || tenant).
``auditlog keyring export-tenant`` writes a keyring holding one tenant's KEK only: what an auditor
of that tenant is given. Wrapping is AES key wrap (RFC 3394).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from auditlog.errors import ConfigurationError, KeyUnavailableError

__all__ = ["KeyProvider", "LocalKeyring", "create_keyring", "export_tenant", "open_keyring"]

_FORMAT = "auditlog-keyring"
_KEY_BYTES = 32
_KEK_ID_PREFIX = b"auditlog kek id\n"


class KeyProvider(Protocol):
    """Wraps and unwraps data keys under per-tenant KEKs that it never exports."""

    def kek_id(self, tenant: str) -> str:
        """The id of the tenant's current KEK (raises KeyUnavailableError if none)."""
        ...

    def wrap(self, kek_id: str, dek: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """The data key; raises KeyUnavailableError if the KEK is not held or it fails."""
        ...


def _kek_id(tenant: str, kek: bytes) -> str:
    digest = hashlib.sha256(_KEK_ID_PREFIX + kek).hexdigest()
    return f"{tenant}:{digest[:16]}"


class LocalKeyring:
    """A :class:`KeyProvider` over KEKs held in memory (loaded from a keyring file)."""

    def __init__(self, *, master: bytes | None, tenants: dict[str, bytes]) -> None:
        for key in [master, *tenants.values()]:
            if key is not None and len(key) != _KEY_BYTES:
                raise ConfigurationError("keyring keys must be 32 bytes")
        self._master = master
        self._tenants = dict(tenants)
        self._by_id: dict[str, bytes] = {_kek_id(t, k): k for t, k in tenants.items()}

    @classmethod
    def load(cls, path: str | Path) -> LocalKeyring:
        """Read a keyring file; refuses one readable or writable by group or others."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"keyring {path} not found (create one with `auditlog keyring create`)"
            ) from None
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigurationError(
                f"keyring {path} has mode {stat.S_IMODE(mode):04o}: it must be 0600 "
                f"(chmod 600 {path})"
            )
        try:
            doc = orjson.loads(raw)
            if doc.get("format") != _FORMAT or doc.get("v") != 1:
                raise ValueError("not an auditlog keyring (format/v)")
            master = (
                None if doc["master"] is None else base64.b64decode(doc["master"], validate=True)
            )
            tenants = {
                str(t): base64.b64decode(k, validate=True) for t, k in doc["tenants"].items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"keyring {path} is malformed: {exc}") from None
        return cls(master=master, tenants=tenants)

    def _kek(self, tenant: str) -> bytes:
        kek = self._tenants.get(tenant)
        if kek is None:
            if self._master is None:
                raise KeyUnavailableError(f"the keyring holds no key-encryption key of {tenant!r}")
            kek = HKDF(
                algorithm=hashes.SHA256(),
                length=_KEY_BYTES,
                salt=None,
                info=b"auditlog kek v1\n" + tenant.encode(),
            ).derive(self._master)
            self._tenants[tenant] = kek
            self._by_id[_kek_id(tenant, kek)] = kek
        return kek

    def kek_id(self, tenant: str) -> str:
        return _kek_id(tenant, self._kek(tenant))

    def _by(self, kek_id: str) -> bytes:
        kek = self._by_id.get(kek_id)
        if kek is None and ":" in kek_id and self._master is not None:
            self._kek(kek_id.rsplit(":", 1)[0])  # derive, then look up by id again
            kek = self._by_id.get(kek_id)
        if kek is None:
            raise KeyUnavailableError(f"the keyring does not hold key-encryption key {kek_id}")
        return kek

    def wrap(self, kek_id: str, dek: bytes) -> bytes:
        return aes_key_wrap(self._by(kek_id), dek)

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        try:
            return aes_key_unwrap(self._by(kek_id), wrapped)
        except InvalidUnwrap:
            raise KeyUnavailableError(f"a data key does not unwrap with {kek_id}") from None

    def tenant_document(self, tenant: str) -> dict[str, Any]:
        """A keyring document holding only ``tenant``'s KEK."""
        kek = self._kek(tenant)
        return _document(None, {tenant: kek})


def _document(master: bytes | None, tenants: dict[str, bytes]) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "v": 1,
        "master": None if master is None else base64.b64encode(master).decode(),
        "tenants": {t: base64.b64encode(k).decode() for t, k in sorted(tenants.items())},
    }


def _write_new(path: Path, doc: dict[str, Any]) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: a keyring is never overwritten") from None
    try:
        os.write(fd, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def create_keyring(path: str | Path, *, tenants: list[str] | None = None) -> Path:
    """Create a new keyring file (0600). With ``tenants``: one random KEK each and no master;
    without: a random master from which every tenant's KEK is derived."""
    path = Path(path)
    if tenants:
        _write_new(path, _document(None, {t: os.urandom(_KEY_BYTES) for t in tenants}))
    else:
        _write_new(path, _document(os.urandom(_KEY_BYTES), {}))
    return path


def export_tenant(source: str | Path, dest: str | Path, tenant: str) -> Path:
    """Write a keyring holding ``tenant``'s KEK only (for that tenant's auditors)."""
    dest = Path(dest)
    _write_new(dest, LocalKeyring.load(source).tenant_document(tenant))
    return dest


def open_keyring(path: str | Path, *, create: bool = True) -> LocalKeyring:
    """Load the keyring at ``path``; with ``create``, make a new master keyring there first if
    none exists (how ``serve``, ``demo`` and the adapters turn encryption on by default)."""
    path = Path(path)
    if create and not path.exists():
        create_keyring(path)
    return LocalKeyring.load(path)
