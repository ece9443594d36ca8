"""The writer's side of a log's ledger: appending a flush, and resuming a log after a restart.

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction; none
of them commits (``with engine.begin() as conn: append_batch(conn, ...)``). A log has exactly one
writer, which owns its sequence numbers; this module does not lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, and_, func, select

from auditlog.crypto.envelope import DataKey
from auditlog.errors import StoreError
from auditlog.ledger.record_format import RecordKind
from auditlog.store.bulk import insert_rows
from auditlog.store.checkpoints import StoredCheckpoint, insert_checkpoint
from auditlog.store.data_keys import insert_data_keys
from auditlog.store.schema import records

__all__ = ["REQUEST_END_KIND", "LogState", "RecordLike", "append_batch", "load_log_state"]

#: The kind of the record that closes a request's chain.
REQUEST_END_KIND: str = RecordKind.REQUEST_END.value

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
class LogState:
    """What a writer needs to resume a log after a restart or crash.

    ``open_chains`` maps the id of each request whose last record is not ``request.end`` to
    (its last ``req_seq``, that record's leaf hash), the ``prev`` of its next record.
    """

    size: int
    open_chains: dict[str, tuple[int, bytes]]


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
