"""Wrapped data keys of sealed payloads (C16): insert, read, and delete (crypto-shredding, C16)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, select

from auditlog.crypto.envelope import DataKey
from auditlog.store.bulk import insert_rows
from auditlog.store.schema import data_keys, logs, records

__all__ = [
    "bodies_of_kind",
    "delete_data_keys",
    "erasure_bodies",
    "insert_data_keys",
    "keyed_requests",
    "purge_freed_keys",
    "read_data_key",
    "read_data_keys",
]

_COLUMNS = ("log_id", "request_id", "tenant", "kek_id", "wrapped")


def insert_data_keys(conn: Connection, log_id: int, keys: Sequence[DataKey]) -> None:
    """Store wrapped data keys, in the caller's transaction (with the records they seal)."""
    insert_rows(
        conn,
        "data_keys",
        _COLUMNS,
        [(log_id, k.request_id, k.tenant, k.kek_id, k.wrapped) for k in keys],
    )


def read_data_key(conn: Connection, log_id: int, request_id: str) -> DataKey | None:
    row = conn.execute(
        select(data_keys.c.request_id, data_keys.c.tenant, data_keys.c.kek_id, data_keys.c.wrapped)
        .where(data_keys.c.log_id == log_id)
        .where(data_keys.c.request_id == request_id)
    ).first()
    return None if row is None else DataKey(row[0], row[1], row[2], bytes(row[3]))


def read_data_keys(conn: Connection, log_id: int) -> dict[str, DataKey]:
    """Every wrapped data key of a log, by request id (for the verifier: digests only)."""
    rows = conn.execute(
        select(
            data_keys.c.request_id, data_keys.c.tenant, data_keys.c.kek_id, data_keys.c.wrapped
        ).where(data_keys.c.log_id == log_id)
    )
    return {r[0]: DataKey(r[0], r[1], r[2], bytes(r[3])) for r in rows}


def delete_data_keys(conn: Connection, log_id: int, request_ids: Iterable[str]) -> int:
    """Destroy the wrapped data keys of ``request_ids``; returns how many rows went.

    On SQLite ``secure_delete`` overwrites the freed bytes; on PostgreSQL the caller vacuums the
    table after the commit (:func:`purge_freed_keys`).
    """
    ids = list(request_ids)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    num = 0
    for start in range(0, len(ids), 500):
        result = conn.execute(
            delete(data_keys)
            .where(data_keys.c.log_id == log_id)
            .where(data_keys.c.request_id.in_(ids[start : start + 500]))
        )
        num += result.rowcount
    return num


def purge_freed_keys(conn: Connection) -> None:
    """After a committed erasure: leave no copy of a deleted key in the database's files.

    PostgreSQL: ``VACUUM FULL data_keys`` rewrites the table, then ``VACUUM`` (``conn`` in
    autocommit mode); a deleted row still visible to a transaction open elsewhere survives until
    that transaction ends and a later vacuum runs (autovacuum, or ``auditlog erase`` again).
    SQLite: the deletion ran with ``secure_delete`` (freed bytes zeroed); a truncating WAL
    checkpoint then drops the log frames that still held the old pages. Copies outside the
    database (PostgreSQL WAL archives, backups) are only wrapped keys: useless without the
    tenant's KEK, which never enters the database (docs/TRUST.md).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("VACUUM FULL data_keys")
        conn.exec_driver_sql("VACUUM data_keys")
        return
    raw: Any = conn.connection.driver_connection
    if raw.in_transaction:
        raw.commit()
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def keyed_requests(
    conn: Connection, *, request_ids: Sequence[str] | None = None, tenant: str | None = None
) -> list[tuple[str, int, str, bytes]]:
    """Requests that still have a data key: ``(origin, log_id, request_id, request.start body)``,
    selected by request id and/or tenant (the caller filters on other header fields)."""
    query = (
        select(logs.c.origin, data_keys.c.log_id, data_keys.c.request_id, records.c.body)
        .join(logs, logs.c.id == data_keys.c.log_id)
        .join(
            records,
            and_(
                records.c.log_id == data_keys.c.log_id,
                records.c.request_id == data_keys.c.request_id,
                records.c.req_seq == 0,
            ),
        )
        .order_by(data_keys.c.log_id, data_keys.c.request_id)
    )
    if request_ids is not None:
        query = query.where(data_keys.c.request_id.in_(list(request_ids)))
    if tenant is not None:
        query = query.where(data_keys.c.tenant == tenant)
    return [(r[0], r[1], r[2], bytes(r[3])) for r in conn.execute(query)]


def erasure_bodies(conn: Connection) -> list[tuple[str, int, bytes]]:
    """Every ``erasure`` record: ``(origin, seq, header bytes)`` (few: one per erasure order)."""
    return bodies_of_kind(conn, "erasure")


def bodies_of_kind(conn: Connection, kind: str) -> list[tuple[str, int, bytes]]:
    """Every record of ``kind`` in every log: ``(origin, seq, header bytes)``, in log order.
    For the administrative kinds (``erasure``, ``admin``), which are few."""
    rows = conn.execute(
        select(logs.c.origin, records.c.seq, records.c.body)
        .join(logs, logs.c.id == records.c.log_id)
        .where(records.c.kind == kind)
        .order_by(records.c.log_id, records.c.seq)
    )
    return [(r[0], r[1], bytes(r[2])) for r in rows]
