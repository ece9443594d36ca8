"""Signed checkpoints as stored: the C2SP note text, with its tree size and root for queries.

The table is append-only (C9): a log never replaces a checkpoint it has signed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from auditlog.errors import NotFoundError, StoreError
from auditlog.store.schema import HASH_SIZE, checkpoints

__all__ = [
    "StoredCheckpoint",
    "get_checkpoint",
    "insert_checkpoint",
    "iter_checkpoints",
    "latest_checkpoint",
    "list_checkpoints",
]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """One row of ``checkpoints``: ``note`` is the signed note exactly as signed."""

    size: int
    root: bytes
    note: str
    ts: int


def insert_checkpoint(conn: Connection, log_id: int, checkpoint: StoredCheckpoint) -> None:
    """Store a signed checkpoint inside the caller's transaction.

    Raises StoreError for a root that is not 32 bytes or a size already checkpointed.
    """
    if len(checkpoint.root) != HASH_SIZE:
        raise StoreError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(checkpoint.root)}")
    conn.execute(
        insert(checkpoints),
        {
            "log_id": log_id,
            "size": checkpoint.size,
            "root": checkpoint.root,
            "note": checkpoint.note,
            "ts": checkpoint.ts,
        },
    )


def _row(row: tuple[int, bytes, str, int]) -> StoredCheckpoint:
    size, root, note, ts = row
    return StoredCheckpoint(size=size, root=bytes(root), note=note, ts=ts)


_COLUMNS = (checkpoints.c.size, checkpoints.c.root, checkpoints.c.note, checkpoints.c.ts)


def list_checkpoints(
    conn: Connection, log_id: int, *, min_size: int = 0, max_size: int | None = None
) -> list[StoredCheckpoint]:
    """The log's checkpoints with ``min_size <= size <= max_size``, by increasing size."""
    stmt = select(*_COLUMNS).where(checkpoints.c.log_id == log_id, checkpoints.c.size >= min_size)
    if max_size is not None:
        stmt = stmt.where(checkpoints.c.size <= max_size)
    return [_row(tuple(row)) for row in conn.execute(stmt.order_by(checkpoints.c.size))]


_PAGE = 16  # checkpoints fetched per query by iter_checkpoints


def iter_checkpoints(
    conn: Connection, log_id: int, *, newest_first: bool, min_size: int = 0, max_size: int | None
) -> Iterator[StoredCheckpoint]:
    """The log's checkpoints with ``min_size <= size <= max_size`` by size (newest or oldest
    first), fetched a page at a time: a caller that stops early reads only what it looked at."""
    order = checkpoints.c.size.desc() if newest_first else checkpoints.c.size
    low, high = min_size, max_size
    while True:
        stmt = select(*_COLUMNS).where(checkpoints.c.log_id == log_id, checkpoints.c.size >= low)
        if high is not None:
            stmt = stmt.where(checkpoints.c.size <= high)
        rows = conn.execute(stmt.order_by(order).limit(_PAGE)).all()
        for row in rows:
            yield _row(tuple(row))
        if len(rows) < _PAGE:
            return
        if newest_first:
            high = rows[-1][0] - 1
        else:
            low = rows[-1][0] + 1


def latest_checkpoint(conn: Connection, log_id: int) -> StoredCheckpoint | None:
    """The checkpoint of the largest tree size, or None when the log has none."""
    largest = (
        select(func.max(checkpoints.c.size)).where(checkpoints.c.log_id == log_id).scalar_subquery()
    )
    row = conn.execute(
        select(*_COLUMNS).where(checkpoints.c.log_id == log_id, checkpoints.c.size == largest)
    ).first()
    return None if row is None else _row(tuple(row))


def get_checkpoint(conn: Connection, log_id: int, size: int) -> StoredCheckpoint:
    """The checkpoint of tree size ``size``; raises NotFoundError when there is none."""
    row = conn.execute(
        select(*_COLUMNS).where(checkpoints.c.log_id == log_id, checkpoints.c.size == size)
    ).first()
    if row is None:
        raise NotFoundError(f"no checkpoint of size {size} in this log")
    return _row(tuple(row))
