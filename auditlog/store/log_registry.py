"""The logs table: one row per log, named by its origin (docs/INTERNALS.md, store), and the
writer's checks that an origin and a request id are its own.

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from auditlog.errors import NotFoundError, StoreError
from auditlog.store.schema import logs, records

__all__ = [
    "LogInfo",
    "ensure_log",
    "get_log_id",
    "list_logs",
    "log_holds_other_kinds",
    "request_in_log",
]


@dataclass(frozen=True, slots=True)
class LogInfo:
    id: int
    origin: str
    created: int


def ensure_log(conn: Connection, origin: str, *, created: int | None = None) -> int:
    """The id of the log named ``origin``, created (at ``created`` ns, default now) if missing."""
    found = conn.execute(select(logs.c.id).where(logs.c.origin == origin)).scalar_one_or_none()
    if found is not None:
        return int(found)
    result = conn.execute(
        insert(logs).values(origin=origin, created=time.time_ns() if created is None else created)
    )
    key = result.inserted_primary_key
    if key is None:
        raise StoreError(f"the database returned no id for the new log {origin!r}")
    return int(key[0])


def get_log_id(conn: Connection, origin: str) -> int:
    """The id of the log named ``origin``; raises NotFoundError if there is none."""
    found = conn.execute(select(logs.c.id).where(logs.c.origin == origin)).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no log with origin {origin!r}")
    return int(found)


def list_logs(conn: Connection) -> list[LogInfo]:
    """Every log in the database, by id."""
    rows = conn.execute(select(logs.c.id, logs.c.origin, logs.c.created).order_by(logs.c.id))
    return [LogInfo(*row) for row in rows]


def request_in_log(conn: Connection, origin: str, request_id: str) -> bool:
    """Whether log ``origin`` holds any row of ``request_id`` (a writer's uniqueness check: any
    row counts, covered or not, so an id is never reused)."""
    query = (
        select(records.c.seq)
        .select_from(records.join(logs, logs.c.id == records.c.log_id))
        .where(logs.c.origin == origin, records.c.request_id == request_id)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def log_holds_other_kinds(conn: Connection, origin: str, kind: str) -> bool:
    """Whether log ``origin`` holds any record whose kind is not ``kind`` (a writer's check that
    an origin is its own)."""
    query = (
        select(records.c.seq)
        .select_from(records.join(logs, logs.c.id == records.c.log_id))
        .where(logs.c.origin == origin, records.c.kind != kind)
        .limit(1)
    )
    return conn.execute(query).first() is not None
