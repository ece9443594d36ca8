"""Caller identity for the inference server: API key -> tenant and principal (C3).

The server keeps only ``key_sha256`` = lowercase hex SHA-256 of each key's UTF-8 text, never a
key itself. A caller presents ``Authorization: Bearer <key>``; the server hashes what it got and
looks the hash up. The record's ``client`` field names the key by ``key:<first 16 hex digits of
its hash>``, which identifies the key without revealing it.

Keys file (JSON)::

    {"keys": [{"sha256": "<64 hex>", "tenant": "acme-bank", "principal": "svc-chat@acme"}]}

``{"key": "<plain key>", ...}`` is accepted in place of ``sha256`` for local use; it is hashed on
load and not kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditlog.errors import AuditlogError, ConfigurationError
from auditlog.tenants import is_tenant_name, tenant_name_error

__all__ = [
    "ApiKeyTable",
    "AuthenticationError",
    "Identity",
    "hash_api_key",
]

_HEX64_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,254}\Z")
_CLIENT_ID_HEX_DIGITS = 16


class AuthenticationError(AuditlogError):
    """The bearer key is missing, malformed, unknown or revoked: 401 from the inference server,
    the audit middleware and the auditor API alike (one authentication error type)."""


def hash_api_key(key: str) -> str:
    """Lowercase hex SHA-256 of the key's UTF-8 bytes (what the server stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who called: recorded in the request's ``request.start`` record (C3)."""

    tenant: str
    principal: str
    client: str  # "key:<16 hex of the key's SHA-256>"


class ApiKeyTable:
    """Maps SHA-256 hashes of API keys to identities."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        """``entries`` maps a key's hex SHA-256 to ``(tenant, principal)``."""
        table: dict[str, Identity] = {}
        for digest, (tenant, principal) in entries.items():
            if not _HEX64_RE.match(digest):
                raise ConfigurationError(
                    f"API key hash must be 64 lowercase hex digits, got {digest!r}"
                )
            if not is_tenant_name(tenant):
                raise ConfigurationError(f"API key {digest[:16]}: {tenant_name_error(tenant)}")
            if not isinstance(principal, str) or not _NAME_RE.match(principal):
                raise ConfigurationError(f"bad principal for API key {digest[:16]}: {principal!r}")
            table[digest] = Identity(
                tenant=tenant, principal=principal, client=f"key:{digest[:_CLIENT_ID_HEX_DIGITS]}"
            )
        self._by_hash = table

    @classmethod
    def from_plain_keys(cls, keys: Mapping[str, tuple[str, str]]) -> ApiKeyTable:
        """Build from ``plain key -> (tenant, principal)``; only the hashes are kept."""
        return cls({hash_api_key(key): ident for key, ident in keys.items()})

    @classmethod
    def from_file(cls, path: Path) -> ApiKeyTable:
        """Load a keys file (module docstring)."""
        try:
            raw = orjson.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigurationError(f"API keys file not found: {path}") from exc
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(f"API keys file {path} is not JSON: {exc}") from exc
        entries = raw.get("keys") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise ConfigurationError(f'API keys file {path}: expected {{"keys": [...]}}')
        table: dict[str, tuple[str, str]] = {}
        for i, entry in enumerate(entries):
            table[_entry_hash(entry, i, path)] = (entry.get("tenant"), entry.get("principal"))
        return cls(table)

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, authorization: str | None) -> tuple[str | None, Identity | None]:
        """``(key hash, identity)`` for a bearer header, without raising; Nones if absent."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None, None
        digest = hash_api_key(key.strip())
        return digest, self._by_hash.get(digest)

    def authenticate(self, authorization: str | None) -> Identity:
        """Identity for an ``Authorization`` header value; raise :class:`AuthenticationError`."""
        if not authorization:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        identity = self._by_hash.get(hash_api_key(key.strip()))
        if identity is None:
            raise AuthenticationError("incorrect API key provided")
        return identity

    def rejection(self, authorization: str | None) -> AuthenticationError | None:
        """What :meth:`authenticate` raises for this header, or None if it is accepted."""
        try:
            self.authenticate(authorization)
        except AuthenticationError as exc:
            return exc
        return None


def _entry_hash(entry: Any, index: int, path: Path) -> str:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"API keys file {path}: entry {index} is not an object")
    if "sha256" in entry:
        digest = entry["sha256"]
        if not isinstance(digest, str):
            raise ConfigurationError(f"API keys file {path}: entry {index}: sha256 not a string")
        return digest
    if isinstance(entry.get("key"), str):
        return hash_api_key(entry["key"])
    raise ConfigurationError(f"API keys file {path}: entry {index} has neither sha256 nor key")
