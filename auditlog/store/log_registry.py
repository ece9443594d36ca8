"""The logs table: one row per log, named by its origin (docs/INTERNALS.md, store).

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from auditlog.errors import NotFoundError, StoreError
from auditlog.store.schema import logs

__all__ = ["LogInfo", "ensure_log", "get_log_id", "list_logs"]


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
