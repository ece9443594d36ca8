"""API keys of the auditor API: creation, revocation, authentication (C17).

A key is shown once, at creation, as ``alk_<id>.<secret>``: ``id`` is 16 lowercase hex digits
(the key's public name, written into every ``access`` record), ``secret`` is 32 random bytes in
unpadded base64url. The database keeps only ``key_hash`` = lowercase hex SHA-256 of the secret's
ASCII text; authentication looks the row up by ``id`` and compares hashes with
:func:`hmac.compare_digest` (constant time).

Roles (C17):

- ``auditor``: reads the content of the tenants listed on its key, and nothing else;
- ``operator``: physical step manifests, checkpoints, proofs and keys; never content;
- ``admin``: everything, every tenant.

The caller owns the transaction of every function here.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from auditlog.errors import InvalidRequestError, NotFoundError
from auditlog.gateway.auth import AuthenticationError
from auditlog.tenants import is_tenant_name, tenant_name_error

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "AuthenticationError",
    "IssuedKey",
    "Role",
    "api_keys",
    "authenticate",
    "create_key",
    "get_key",
    "key_secret_hash",
    "list_keys",
    "revoke_key",
]

#: Every API key starts with this marker (lets secret scanners recognise a leaked key).
KEY_PREFIX = "alk_"
_ID_HEX_DIGITS = 16
_SECRET_BYTES = 32
_TOKEN_RE = re.compile(r"\Aalk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\Z")


class Role(enum.StrEnum):
    """What a key may read (C17)."""

    AUDITOR = "auditor"
    OPERATOR = "operator"
    ADMIN = "admin"


# A separate MetaData: the table is created by migrations/versions/0002_api_keys.py, which holds
# a frozen copy of this definition.
_metadata = MetaData()
api_keys = Table(
    "api_keys",
    _metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False),  # hex SHA-256 of the secret
    Column("role", String(16), nullable=False),
    Column("tenants", Text, nullable=False),  # canonical JSON array of tenant names
    Column("label", String(255), nullable=False, server_default=""),
    Column("created", BigInteger, nullable=False),  # ns since the Unix epoch, UTC
    Column("revoked", BigInteger, nullable=True),  # set once, never cleared
    CheckConstraint("role IN ('auditor', 'operator', 'admin')", name="ck_api_keys_role_known"),
    CheckConstraint("length(key_hash) = 64", name="ck_api_keys_key_hash_len"),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    role: Role
    tenants: tuple[str, ...]
    label: str
    created: int
    revoked: int | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked is not None

    @property
    def read_scope(self) -> tuple[str, ...] | None:
        """Tenants whose content this key may read; None for every tenant (admin)."""
        return None if self.role is Role.ADMIN else self.tenants

    def may_read_tenant(self, tenant: str | None) -> bool:
        """True when this key may read content of ``tenant`` (admins: every tenant)."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.AUDITOR and tenant is not None and tenant in self.tenants


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``token`` is the bearer secret, shown once and never stored."""

    key: ApiKey
    token: str


def key_secret_hash(secret: str) -> str:
    """Lowercase hex SHA-256 of a key's secret text (what ``api_keys.key_hash`` stores)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def check_scope(role: Role, tenants: Sequence[str]) -> tuple[str, ...]:
    """The key's tenants, sorted and unique; InvalidRequestError unless they fit ``role``
    (auditor: at least one tenant; operator and admin: none) and follow the tenant name rule."""
    for tenant in tenants:
        if not is_tenant_name(tenant):
            raise InvalidRequestError(tenant_name_error(tenant))
    unique = tuple(sorted(set(tenants)))
    if role is Role.AUDITOR and not unique:
        raise InvalidRequestError("an auditor key needs at least one tenant")
    if role is not Role.AUDITOR and unique:
        raise InvalidRequestError(f"a {role} key is not scoped to tenants; got {list(unique)}")
    return unique


def create_key(
    conn: Connection, *, role: Role, tenants: Sequence[str] = (), label: str = ""
) -> IssuedKey:
    """Insert a new key and return it with its one-time bearer token."""
    scoped = check_scope(role, tenants)
    key_id = secrets.token_hex(_ID_HEX_DIGITS // 2)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
    key = ApiKey(
        id=key_id, role=role, tenants=scoped, label=label, created=time.time_ns(), revoked=None
    )
    conn.execute(
        insert(api_keys),
        {
            "id": key.id,
            "key_hash": key_secret_hash(secret),
            "role": str(key.role),
            "tenants": orjson.dumps(list(key.tenants)).decode(),
            "label": key.label,
            "created": key.created,
            "revoked": None,
        },
    )
    return IssuedKey(key=key, token=f"{KEY_PREFIX}{key_id}.{secret}")


def _key(row: tuple[str, str, str, str, int, int | None]) -> ApiKey:
    key_id, role, tenants, label, created, revoked = row
    return ApiKey(
        id=key_id,
        role=Role(role),
        tenants=tuple(orjson.loads(tenants)),
        label=label,
        created=created,
        revoked=revoked,
    )


_PUBLIC_COLUMNS = (
    api_keys.c.id,
    api_keys.c.role,
    api_keys.c.tenants,
    api_keys.c.label,
    api_keys.c.created,
    api_keys.c.revoked,
)


def get_key(conn: Connection, key_id: str) -> ApiKey:
    """The key named ``key_id``; raises NotFoundError when there is none."""
    row = conn.execute(select(*_PUBLIC_COLUMNS).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}")
    return _key(tuple(row))


def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key ever issued, revoked ones included, by creation time."""
    stmt = select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created, api_keys.c.id)
    return [_key(tuple(row)) for row in conn.execute(stmt)]


def revoke_key(conn: Connection, key_id: str) -> ApiKey:
    """Revoke ``key_id`` (idempotent: an already revoked key keeps its first revocation time)."""
    key = get_key(conn, key_id)
    if key.is_revoked:
        return key
    now = time.time_ns()
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked.is_(None))
        .values(revoked=now)
    )
    return get_key(conn, key_id)


def authenticate(conn: Connection, token: str) -> ApiKey:
    """The live key whose bearer token is ``token``.

    Raises AuthenticationError for a malformed token, an unknown id, a wrong secret or a revoked
    key, with the same message for the last three (a caller cannot probe which ids exist).
    """
    match = _TOKEN_RE.match(token)
    if match is None:
        raise AuthenticationError("malformed API key")
    key_id, secret = match.groups()
    row = conn.execute(
        select(*_PUBLIC_COLUMNS, api_keys.c.key_hash).where(api_keys.c.id == key_id)
    ).first()
    expected = key_secret_hash(secret)
    # Compare even when the id is unknown, so that timing does not tell known ids apart.
    stored = row.key_hash if row is not None else "0" * 64
    if not hmac.compare_digest(stored, expected) or row is None:
        raise AuthenticationError("unknown or revoked API key")
    key = _key(tuple(row)[:6])
    if key.is_revoked:
        raise AuthenticationError("unknown or revoked API key")
    return key
