"""Witness cosignatures as stored, next to the checkpoint each one signs.

The table is append-only (C9): a cosignature, once received, is evidence and is never replaced.
A witness that cosigns the same checkpoint again (a retried submission) adds nothing: the first
cosignature of each (checkpoint, witness key) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from auditlog.ledger.cosignature import Cosignature
from auditlog.store.schema import cosignatures

__all__ = ["insert_cosignatures", "last_cosigned_size", "list_cosignatures"]


def insert_cosignatures(
    conn: Connection, log_id: int, size: int, cosigs: Sequence[Cosignature], *, received: int
) -> int:
    """Keep the cosignatures of the log's checkpoint at ``size`` (inside the caller's
    transaction); those already kept for the same witness key are skipped. Returns how many were
    added. The checkpoint must be stored (a foreign key)."""
    kept = {
        (row.witness, row.key_id)
        for row in conn.execute(
            select(cosignatures.c.witness, cosignatures.c.key_id).where(
                cosignatures.c.log_id == log_id, cosignatures.c.size == size
            )
        )
    }
    rows = []
    for cosig in cosigs:
        key = (cosig.name, cosig.key_id.hex())
        if key in kept:
            continue
        kept.add(key)
        rows.append(
            {
                "log_id": log_id,
                "size": size,
                "witness": cosig.name,
                "key_id": cosig.key_id.hex(),
                "timestamp": cosig.timestamp,
                "signature": cosig.signature,
                "received": received,
            }
        )
    if rows:
        conn.execute(insert(cosignatures), rows)
    return len(rows)


def list_cosignatures(
    conn: Connection, log_id: int, *, min_size: int = 0, max_size: int | None = None
) -> dict[int, list[Cosignature]]:
    """The log's cosignatures with ``min_size <= size <= max_size``, by tree size."""
    c = cosignatures.c
    stmt = select(c.size, c.witness, c.key_id, c.timestamp, c.signature).where(
        c.log_id == log_id, c.size >= min_size
    )
    if max_size is not None:
        stmt = stmt.where(c.size <= max_size)
    found: dict[int, list[Cosignature]] = {}
    for size, witness, key_id, timestamp, signature in conn.execute(
        stmt.order_by(c.size, c.witness, c.key_id)
    ):
        found.setdefault(size, []).append(
            Cosignature(
                name=witness,
                key_id=bytes.fromhex(key_id),
                timestamp=timestamp,
                signature=bytes(signature),
            )
        )
    return found


def last_cosigned_size(conn: Connection, log_id: int, witness: str, key_id: bytes) -> int | None:
    """The largest tree size this witness key has a cosignature of in the log, or None."""
    c = cosignatures.c
    row = conn.execute(
        select(c.size)
        .where(c.log_id == log_id, c.witness == witness, c.key_id == key_id.hex())
        .order_by(c.size.desc())
        .limit(1)
    ).first()
    return None if row is None else int(row[0])
