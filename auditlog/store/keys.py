"""Public keys that sign a log's checkpoints, kept for the whole retention period (C12).

Only public verifier keys are stored (``<name>+<hex key id>+<base64(0x01 || public key)>``, the
C2SP note form); private keys never reach the database. Rotation sets ``retired`` once; the key
stays listed so that old checkpoints keep verifying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from auditlog.errors import FormatError, NotFoundError
from auditlog.store.schema import signing_keys

__all__ = ["SigningKey", "list_keys", "parse_verifier_key_name", "register_key", "retire_key"]

_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One row of ``signing_keys``."""

    key_name: str
    key_id: str  # 4-byte C2SP key id, lowercase hex
    verifier_key: str
    created: int
    retired: int | None


def parse_verifier_key_name(verifier_key: str) -> tuple[str, str]:
    """Return (key name, hex key id) of a verifier key string; raises FormatError.

    This reads the name and id only; checking the key id against the public key is the ledger's
    ``Verifier.from_key_string``.
    """
    parts = verifier_key.split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3 or not parts[0] or any(c.isspace() for c in parts[0]):
        raise FormatError(
            f"verifier key must read <name>+<hex key id>+<base64 key>, got {verifier_key!r}"
        )
    if not _KEY_ID_HEX.fullmatch(parts[1]):
        raise FormatError(f"verifier key id must be 8 lowercase hex digits, got {parts[1]!r}")
    return parts[0], parts[1]


def register_key(conn: Connection, log_id: int, verifier_key: str, *, created: int) -> SigningKey:
    """Record a public key of the log. Registering the same key again is a no-op.

    Raises FormatError for a malformed key string.
    """
    key_name, key_id = parse_verifier_key_name(verifier_key)
    for known in list_keys(conn, log_id):
        if (known.key_name, known.key_id) == (key_name, key_id):
            if known.verifier_key != verifier_key:
                raise FormatError(
                    f"key {key_name}+{key_id} is already registered with another public key"
                )
            return known
    conn.execute(
        insert(signing_keys),
        {
            "log_id": log_id,
            "key_name": key_name,
            "key_id": key_id,
            "verifier_key": verifier_key,
            "created": created,
            "retired": None,
        },
    )
    return SigningKey(key_name, key_id, verifier_key, created, None)


def list_keys(conn: Connection, log_id: int) -> list[SigningKey]:
    """Every key of the log, retired ones included, oldest first."""
    rows = conn.execute(
        select(
            signing_keys.c.key_name,
            signing_keys.c.key_id,
            signing_keys.c.verifier_key,
            signing_keys.c.created,
            signing_keys.c.retired,
        )
        .where(signing_keys.c.log_id == log_id)
        .order_by(signing_keys.c.created, signing_keys.c.key_name, signing_keys.c.key_id)
    )
    return [SigningKey(*row) for row in rows]


def retire_key(conn: Connection, log_id: int, key_name: str, key_id: str, *, retired: int) -> None:
    """Mark a key retired at ``retired`` (ns). Retiring a retired key keeps the first time.

    Raises NotFoundError for a key the log does not have.
    """
    key = (signing_keys.c.log_id == log_id) & (signing_keys.c.key_name == key_name)
    key = key & (signing_keys.c.key_id == key_id)
    if conn.execute(select(signing_keys.c.created).where(key)).first() is None:
        raise NotFoundError(f"log {log_id} has no key {key_name}+{key_id}")
    conn.execute(
        update(signing_keys).where(key, signing_keys.c.retired.is_(None)).values(retired=retired)
    )
