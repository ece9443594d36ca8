"""Reads of a log's ledger: stored records with their payloads, and Merkle nodes.

These are the writer's and the verifier's views (every committed row); readers of trails never
use them: their one range-bounded read path is :mod:`auditlog.store.trail_reads`.
Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, and_, select

from auditlog.errors import NotFoundError, StoreError
from auditlog.ledger.verify import StoredRecord
from auditlog.store.bulk import fetch_rows
from auditlog.store.schema import nodes, payloads, records

__all__ = [
    "DEFAULT_BATCH",
    "StoredNodeSource",
    "StoredRecord",
    "iter_records",
    "read_record",
    "read_request",
    "request_id_used",
]

#: Rows fetched per query by ``iter_records`` (keyset pagination).
DEFAULT_BATCH = 10_000

_STORED_COLUMNS = (
    records.c.seq,
    records.c.kind,
    records.c.request_id,
    records.c.req_seq,
    records.c.ts,
    records.c.tenant,
    records.c.body,
    records.c.leaf,
    payloads.c.data,
)
_WITH_PAYLOADS = records.outerjoin(
    payloads, and_(payloads.c.log_id == records.c.log_id, payloads.c.seq == records.c.seq)
)


# The same columns as _STORED_COLUMNS, for the driver-level iter_records.
_ITER_SQL = (
    "SELECT r.seq, r.kind, r.request_id, r.req_seq, r.ts, r.tenant, r.body, r.leaf, p.data"
    " FROM records r LEFT OUTER JOIN payloads p ON p.log_id = r.log_id AND p.seq = r.seq"
    " WHERE r.log_id = ? AND r.seq >= ? AND r.seq < ? ORDER BY r.seq LIMIT ?"
)
_MAX_SEQ = 2**63 - 1


def _stored(row: tuple[Any, ...]) -> StoredRecord:
    """A row of ``_STORED_COLUMNS`` as the verifier's value type (``kind`` as the stored string:
    a tampered row may hold any string; ``payload`` None when absent or erased)."""
    seq, kind, request_id, req_seq, ts, tenant, body, leaf, payload = row
    return StoredRecord(
        seq=seq,
        body=body,
        leaf=leaf,
        payload=payload,
        kind=kind,
        request_id=request_id,
        req_seq=req_seq,
        tenant=tenant,
        ts=ts,
    )


def iter_records(
    conn: Connection,
    log_id: int,
    start: int = 0,
    stop: int | None = None,
    *,
    batch: int = DEFAULT_BATCH,
) -> Iterator[StoredRecord]:
    """Yield the stored records with ``start <= seq < stop`` in ``seq`` order, with payloads.

    Streams by keyset pagination (``seq > last`` per query, ``batch`` rows each), so memory stays
    bounded on any log size. Gaps in ``seq`` are yielded as they are; the verifier reports them.
    """
    if batch < 1:
        raise StoreError(f"batch must be at least 1, got {batch}")
    # Driver-level keyset pages: each query continues after the last seq it saw.
    last_stop = _MAX_SEQ if stop is None else stop
    next_seq = start
    while True:
        rows = fetch_rows(conn, _ITER_SQL, (log_id, next_seq, last_stop, batch))
        for row in rows:
            yield _stored(row)
        if len(rows) < batch:
            return
        next_seq = rows[-1][0] + 1


def read_record(conn: Connection, log_id: int, seq: int) -> StoredRecord:
    """The record at ``seq``; raises NotFoundError when there is none."""
    row = conn.execute(
        select(*_STORED_COLUMNS)
        .select_from(_WITH_PAYLOADS)
        .where(records.c.log_id == log_id, records.c.seq == seq)
    ).first()
    if row is None:
        raise NotFoundError(f"log {log_id} has no record {seq}")
    return _stored(tuple(row))


def request_id_used(conn: Connection, log_id: int, request_id: str) -> bool:
    """Whether the log holds any record of ``request_id`` (one indexed lookup)."""
    row = conn.execute(
        select(records.c.seq)
        .where(records.c.log_id == log_id, records.c.request_id == request_id)
        .limit(1)
    ).first()
    return row is not None


def read_request(conn: Connection, log_id: int, request_id: str) -> list[StoredRecord]:
    """The records of one request's chain, by ``req_seq``; an empty list if none exist."""
    rows = conn.execute(
        select(*_STORED_COLUMNS)
        .select_from(_WITH_PAYLOADS)
        .where(records.c.log_id == log_id, records.c.request_id == request_id)
        .order_by(records.c.req_seq, records.c.seq)
    )
    return [_stored(tuple(row)) for row in rows]


class StoredNodeSource:
    """``auditlog.ledger.merkle.NodeSource`` over the database: level 0 reads ``records.leaf``,
    the persisted levels (multiples of ``NODE_LEVEL_STRIDE``) read ``nodes``, by range queries.
    """

    def __init__(self, conn: Connection, log_id: int) -> None:
        self._conn = conn
        self._log_id = log_id

    def get_nodes(self, level: int, start: int, stop: int) -> list[bytes]:
        """Hashes of the complete subtrees ``start .. stop-1`` at ``level``.

        Raises StoreError when the database does not hold every one of them.
        """
        if stop <= start:
            return []
        if level == 0:
            stmt = (
                select(records.c.leaf)
                .where(records.c.log_id == self._log_id, records.c.seq >= start)
                .where(records.c.seq < stop)
                .order_by(records.c.seq)
            )
        else:
            stmt = (
                select(nodes.c.hash)
                .where(nodes.c.log_id == self._log_id, nodes.c.level == level)
                .where(nodes.c.idx >= start, nodes.c.idx < stop)
                .order_by(nodes.c.idx)
            )
        hashes = [bytes(h) for h in self._conn.execute(stmt).scalars()]
        if len(hashes) != stop - start:
            raise StoreError(
                f"log {self._log_id}: expected {stop - start} hashes at level {level} from "
                f"index {start}, the database holds {len(hashes)}"
            )
        return hashes
