"""The verifier's reads: every row of every ledger table, nothing left out by a range bound.

``auditlog verify`` must see each row that any reader could show, so these reads have no bound on
``seq`` (a row at ``seq = 2^63 - 1`` or below 0 is read like any other) and count the rows of
every table per ``log_id`` (rows of a log id that ``logs`` does not list included). All are
keyset-paginated or aggregate queries in the caller's transaction; none writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, func, select

from auditlog.ledger.report import CheckpointRow, StoredRecord
from auditlog.store.bulk import fetch_rows
from auditlog.store.checkpoints import list_checkpoints
from auditlog.store.schema import (
    checkpoints,
    cosignatures,
    nodes,
    payloads,
    records,
    signing_keys,
    timestamps,
)

__all__ = [
    "TABLES_BY_LOG",
    "checkpoint_rows",
    "iter_all_records",
    "iter_node_levels",
    "rows_per_log",
]

#: Tables whose rows belong to a log (``log_id``), in the order findings name them.
TABLES_BY_LOG = (
    "records",
    "payloads",
    "nodes",
    "checkpoints",
    "signing_keys",
    "cosignatures",
    "timestamps",
)

_COLUMNS = "r.seq, r.kind, r.request_id, r.req_seq, r.ts, r.tenant, r.body, r.leaf, p.data"
_FROM = " FROM records r LEFT OUTER JOIN payloads p ON p.log_id = r.log_id AND p.seq = r.seq"
_FIRST_PAGE = f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? ORDER BY r.seq LIMIT ?"
_NEXT_PAGE = f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? AND r.seq > ? ORDER BY r.seq LIMIT ?"
_NODES_FIRST = "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? ORDER BY idx LIMIT ?"
_NODES_NEXT = (
    "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? AND idx > ? ORDER BY idx LIMIT ?"
)
DEFAULT_BATCH = 10_000


def iter_all_records(
    conn: Connection, log_id: int, *, batch: int = DEFAULT_BATCH
) -> Iterator[StoredRecord]:
    """Every stored record of the log with its payload, by ``seq``, whatever its ``seq``."""
    rows = fetch_rows(conn, _FIRST_PAGE, (log_id, batch))
    while True:
        for seq, kind, request_id, req_seq, ts, tenant, body, leaf, data in rows:
            yield StoredRecord(
                seq=seq,
                body=body,
                leaf=leaf,
                payload=data,
                kind=kind,
                request_id=request_id,
                req_seq=req_seq,
                tenant=tenant,
                ts=ts,
            )
        if len(rows) < batch:
            return
        rows = fetch_rows(conn, _NEXT_PAGE, (log_id, rows[-1][0], batch))


def _iter_level(
    conn: Connection, log_id: int, level: int, batch: int
) -> Iterator[tuple[int, bytes]]:
    rows = fetch_rows(conn, _NODES_FIRST, (log_id, level, batch))
    while True:
        for idx, digest in rows:
            yield int(idx), bytes(digest)
        if len(rows) < batch:
            return
        rows = fetch_rows(conn, _NODES_NEXT, (log_id, level, rows[-1][0], batch))


def iter_node_levels(
    conn: Connection, log_id: int, *, batch: int = DEFAULT_BATCH
) -> dict[int, Iterator[tuple[int, bytes]]]:
    """The log's stored Merkle nodes: ``{level: (idx, hash) by increasing idx}``, every level."""
    levels = conn.execute(
        select(nodes.c.level).where(nodes.c.log_id == log_id).distinct()
    ).scalars()
    return {int(level): _iter_level(conn, log_id, int(level), batch) for level in levels}


def checkpoint_rows(conn: Connection, log_id: int) -> list[CheckpointRow]:
    """Every stored checkpoint of the log, with its ``size``/``root`` columns."""
    return [CheckpointRow(c.size, c.root, c.note) for c in list_checkpoints(conn, log_id)]


def rows_per_log(conn: Connection) -> dict[str, dict[int, int]]:
    """``{table: {log_id: number of rows}}`` for every table of :data:`TABLES_BY_LOG`."""
    counts: dict[str, dict[int, int]] = {}
    tables = (records, payloads, nodes, checkpoints, signing_keys, cosignatures, timestamps)
    for name, table in zip(TABLES_BY_LOG, tables, strict=True):
        rows = conn.execute(select(table.c.log_id, func.count()).group_by(table.c.log_id))
        counts[name] = {int(log_id): int(n) for log_id, n in rows}
    return counts
