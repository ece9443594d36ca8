"""Reads and writes of a log's ledger: records, payloads, Merkle nodes, checkpoints, keys.

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction; none
of them commits (``with engine.begin() as conn: append_batch(conn, ...)``). A log has exactly one
writer, which owns its sequence numbers; this module does not lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, and_, func, insert, select

from auditlog.crypto.envelope import DataKey
from auditlog.errors import NotFoundError, StoreError
from auditlog.ledger.record_format import RecordKind
from auditlog.ledger.verify import StoredRecord
from auditlog.store.bulk import fetch_rows, insert_rows
from auditlog.store.checkpoints import (
    StoredCheckpoint,
    get_checkpoint,
    insert_checkpoint,
    latest_checkpoint,
    list_checkpoints,
)
from auditlog.store.data_keys import insert_data_keys
from auditlog.store.keys import SigningKey, list_keys, register_key, retire_key
from auditlog.store.schema import logs, nodes, payloads, records

__all__ = [
    "REQUEST_END_KIND",
    "LogInfo",
    "LogState",
    "RecordLike",
    "SigningKey",
    "StoredCheckpoint",
    "StoredNodeSource",
    "StoredRecord",
    "append_batch",
    "ensure_log",
    "get_checkpoint",
    "get_log_id",
    "insert_checkpoint",
    "iter_records",
    "latest_checkpoint",
    "list_checkpoints",
    "list_keys",
    "list_logs",
    "load_log_state",
    "read_record",
    "read_request",
    "register_key",
    "request_id_used",
    "retire_key",
]

#: The kind of the record that closes a request's chain.
REQUEST_END_KIND: str = RecordKind.REQUEST_END.value

#: Rows fetched per query by ``iter_records`` (keyset pagination).
DEFAULT_BATCH = 10_000

_RECORD_COLUMNS = ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body")
_PAYLOAD_COLUMNS = ("log_id", "seq", "data")
_NODE_COLUMNS = ("log_id", "level", "idx", "hash")


class RecordLike(Protocol):
    """What ``append_batch`` reads from a record (``auditlog.ledger.records.Record`` fits)."""

    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def req_seq(self) -> int | None: ...
    @property
    def ts(self) -> int: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...
    @property
    def leaf(self) -> bytes: ...
    @property
    def payload(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class LogInfo:
    id: int
    origin: str
    created: int


@dataclass(frozen=True, slots=True)
class LogState:
    """What a writer needs to resume a log after a restart or crash.

    ``open_chains`` maps the id of each request whose last record is not ``request.end`` to
    (its last ``req_seq``, that record's leaf hash), the ``prev`` of its next record.
    """

    size: int
    open_chains: dict[str, tuple[int, bytes]]


# -- logs ---------------------------------------------------------------------------------------


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


# -- writes -------------------------------------------------------------------------------------


def append_batch(
    conn: Connection,
    log_id: int,
    records: Sequence[RecordLike],
    nodes: Sequence[tuple[int, int, bytes]] = (),
    checkpoint: StoredCheckpoint | None = None,
    data_keys: Sequence[DataKey] = (),
) -> None:
    """Insert one flush: ``records`` (with their payloads), new Merkle ``nodes``
    ``(level, index, hash)`` and optionally a signed checkpoint, in the caller's transaction.

    The records MUST have consecutive ``seq`` values in order; the caller MUST commit for them to
    be durable and MUST roll back after a StoreError (a ``with engine.begin()`` block does both).
    Raises StoreError for a gap in ``seq`` or a row the database rejects (a ``seq`` already
    stored, a hash that is not 32 bytes, ...).
    """
    if records:
        first = records[0].seq
        for offset, record in enumerate(records):
            if record.seq != first + offset:
                raise StoreError(
                    f"records of a batch must have consecutive seq: at position {offset} "
                    f"expected seq {first + offset}, got {record.seq}"
                )
    insert_rows(
        conn,
        "records",
        _RECORD_COLUMNS,
        [
            (log_id, r.seq, str(r.kind), r.request_id, r.req_seq, r.tenant, r.ts, r.leaf, r.body)
            for r in records
        ],
    )
    insert_rows(
        conn,
        "payloads",
        _PAYLOAD_COLUMNS,
        [(log_id, r.seq, r.payload) for r in records if r.payload is not None],
    )
    insert_rows(conn, "nodes", _NODE_COLUMNS, [(log_id, lvl, idx, h) for lvl, idx, h in nodes])
    if data_keys:
        insert_data_keys(conn, log_id, data_keys)
    if checkpoint is not None:
        insert_checkpoint(conn, log_id, checkpoint)


# -- reads --------------------------------------------------------------------------------------

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


def load_log_state(conn: Connection, log_id: int) -> LogState:
    """The log's size (last ``seq`` + 1) and its open request chains, computed in SQL.

    The open chains come from one grouped query over the ``(log_id, request_id, req_seq)`` index:
    the last record of every request, kept when it is not ``request.end``.
    """
    last_seq = conn.execute(
        select(func.max(records.c.seq)).where(records.c.log_id == log_id)
    ).scalar_one()
    last = (
        select(records.c.request_id, func.max(records.c.req_seq).label("req_seq"))
        .where(records.c.log_id == log_id, records.c.request_id.is_not(None))
        .group_by(records.c.request_id)
        .subquery()
    )
    rows = conn.execute(
        select(records.c.request_id, records.c.req_seq, records.c.leaf)
        .join(
            last,
            and_(
                records.c.log_id == log_id,
                records.c.request_id == last.c.request_id,
                records.c.req_seq == last.c.req_seq,
            ),
        )
        .where(records.c.kind != REQUEST_END_KIND)
    )
    open_chains = {str(rid): (int(req_seq), bytes(leaf)) for rid, req_seq, leaf in rows}
    return LogState(size=0 if last_seq is None else int(last_seq) + 1, open_chains=open_chains)
