"""RFC 3161 timestamp responses as stored, one per checkpoint at most (append-only, C9)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from auditlog.store.schema import timestamps

__all__ = ["StoredTimestamp", "get_timestamp", "insert_timestamp", "list_timestamps"]


@dataclass(frozen=True, slots=True)
class StoredTimestamp:
    """The TSA's DER ``TimeStampResp`` for the checkpoint at ``size``, and its genTime (ns)."""

    size: int
    response: bytes
    gen_time: int


def insert_timestamp(
    conn: Connection, log_id: int, stamp: StoredTimestamp, *, received: int
) -> bool:
    """Keep the timestamp of the log's checkpoint at ``stamp.size`` unless one is kept already
    (the first stays); True when stored. The checkpoint must be stored (a foreign key)."""
    kept = conn.execute(
        select(timestamps.c.size).where(
            timestamps.c.log_id == log_id, timestamps.c.size == stamp.size
        )
    ).first()
    if kept is not None:
        return False
    conn.execute(
        insert(timestamps),
        {
            "log_id": log_id,
            "size": stamp.size,
            "response": stamp.response,
            "gen_time": stamp.gen_time,
            "received": received,
        },
    )
    return True


def list_timestamps(conn: Connection, log_id: int) -> list[StoredTimestamp]:
    """The log's timestamps by increasing checkpoint size."""
    c = timestamps.c
    rows = conn.execute(
        select(c.size, c.response, c.gen_time).where(c.log_id == log_id).order_by(c.size)
    )
    return [StoredTimestamp(int(s), bytes(r), int(g)) for s, r, g in rows]


def get_timestamp(conn: Connection, log_id: int, size: int) -> StoredTimestamp | None:
    """The timestamp of the log's checkpoint at ``size``, or None."""
    c = timestamps.c
    row = conn.execute(
        select(c.response, c.gen_time).where(c.log_id == log_id, c.size == size)
    ).first()
    return None if row is None else StoredTimestamp(size, bytes(row[0]), int(row[1]))
