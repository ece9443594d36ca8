"""The verifier's reads: every row of every ledger table, nothing left out by a range bound.

``auditlog verify`` must see each row that any reader could show, so these reads have no bound on
``seq`` (a row at ``seq = 2^63 - 1`` or below 0 is read like any other) and count the rows of
every table per ``log_id`` (rows of a log id that ``logs`` does not list included). All are
keyset-paginated or aggregate queries in the caller's transaction; none writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from auditlog.ledger.report import CheckpointRow, StoredRecord
from auditlog.store.bulk import fetch_rows
from auditlog.store.checkpoints import list_checkpoints
from auditlog.store.schema import (
    checkpoints,
    cosignatures,
    data_keys,
    nodes,
    payloads,
    records,
    signing_keys,
    timestamps,
)

__all__ = [
    "TABLES_BY_LOG",
    "NodeWindow",
    "anchor_sizes",
    "checkpoint_rows",
    "iter_all_records",
    "iter_node_levels",
    "iter_record_rows",
    "record_seqs_below",
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
    "data_keys",
)

_COLUMNS = "r.seq, r.kind, r.request_id, r.req_seq, r.ts, r.tenant, r.body, r.leaf, p.data"
_FROM = " FROM records r LEFT OUTER JOIN payloads p ON p.log_id = r.log_id AND p.seq = r.seq"
_FIRST_PAGE = f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? ORDER BY r.seq LIMIT ?"
_NEXT_PAGE = f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? AND r.seq > ? ORDER BY r.seq LIMIT ?"
_RANGE_FIRST = (
    f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? AND r.seq >= ? AND r.seq < ? "
    f"ORDER BY r.seq LIMIT ?"
)
_RANGE_NEXT = (
    f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? AND r.seq > ? AND r.seq < ? "
    f"ORDER BY r.seq LIMIT ?"
)
_NODES_FIRST = "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? ORDER BY idx LIMIT ?"
_NODES_NEXT = (
    "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? AND idx > ? ORDER BY idx LIMIT ?"
)
_NODES_RANGE_FIRST = (
    "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? AND idx >= ? AND idx < ? "
    "ORDER BY idx LIMIT ?"
)
_NODES_RANGE_NEXT = (
    "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? AND idx > ? AND idx < ? "
    "ORDER BY idx LIMIT ?"
)
DEFAULT_BATCH = 10_000
#: The bounds of a signed 64-bit column: no row lies outside ``[_LOWEST, _HIGHEST]``.
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1


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


def iter_record_rows(
    conn: Connection,
    log_id: int,
    lo: int | None,
    hi: int | None,
    *,
    batch: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The stored records with ``lo <= seq < hi`` (None: no bound; ``hi = None`` includes a row
    at ``seq = 2^63 - 1``), by ``seq``, as ``(seq, kind, request_id, req_seq, ts, tenant, body,
    leaf, payload)`` tuples; ``batch`` rows per query (default :data:`DEFAULT_BATCH`)."""
    batch = batch or DEFAULT_BATCH
    if hi is None:  # no row lies above the column's range: read them all, the last one too
        if lo is None:
            yield from _pages(conn, _FIRST_PAGE, _NEXT_PAGE, (log_id,), (), batch)
        else:
            params = (log_id, lo, _HIGHEST)
            yield from _pages(conn, _RANGE_FIRST, _RANGE_NEXT, params, (_HIGHEST,), batch)
            yield from _pages(conn, _TOP_ROW, _TOP_ROW, (log_id, _HIGHEST), (), batch)
        return
    lower = _LOWEST if lo is None else lo
    yield from _pages(conn, _RANGE_FIRST, _RANGE_NEXT, (log_id, lower, hi), (hi,), batch)


_TOP_ROW = f"SELECT {_COLUMNS}{_FROM} WHERE r.log_id = ? AND r.seq = ? LIMIT ?"


def _pages(
    conn: Connection,
    first: str,
    after: str,
    params: tuple[Any, ...],
    tail: tuple[Any, ...],
    batch: int,
) -> Iterator[tuple[Any, ...]]:
    """Keyset pages: ``first`` with ``params``, then ``after`` with (log id, [level,] last key,
    *tail): the node queries (``params[1]`` is the level) keep the level."""
    rows = fetch_rows(conn, first, (*params, batch))
    fixed = params[:2] if first.startswith("SELECT idx") else params[:1]
    while True:
        yield from rows
        if len(rows) < batch:
            return
        rows = fetch_rows(conn, after, (*fixed, rows[-1][0], *tail, batch))


def _iter_level(
    conn: Connection, log_id: int, level: int, lo: int | None, hi: int | None, batch: int
) -> Iterator[tuple[int, bytes]]:
    if hi is None:
        if lo is None:
            pages = _pages(conn, _NODES_FIRST, _NODES_NEXT, (log_id, level), (), batch)
        else:
            params = (log_id, level, lo, _HIGHEST)
            pages = _chain(
                _pages(conn, _NODES_RANGE_FIRST, _NODES_RANGE_NEXT, params, (_HIGHEST,), batch),
                _pages(conn, _NODE_TOP, _NODE_TOP, (log_id, level, _HIGHEST), (), batch),
            )
    else:
        params = (log_id, level, _LOWEST if lo is None else lo, hi)
        pages = _pages(conn, _NODES_RANGE_FIRST, _NODES_RANGE_NEXT, params, (hi,), batch)
    for idx, digest in pages:
        yield int(idx), bytes(digest)


_NODE_TOP = "SELECT idx, hash FROM nodes WHERE log_id = ? AND level = ? AND idx = ? LIMIT ?"


def _chain(*parts: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for part in parts:
        yield from part


#: Which stored nodes of a level to read: ``level -> (lo, hi)``, ``lo <= idx < hi`` (None: no
#: bound), or None to skip the level.
NodeWindow = Callable[[int], tuple[int | None, int | None] | None]


def iter_node_levels(
    conn: Connection,
    log_id: int,
    *,
    window: NodeWindow | None = None,
    batch: int | None = None,
) -> dict[int, Iterator[tuple[int, bytes]]]:
    """The log's stored Merkle nodes: ``{level: (idx, hash) by increasing idx}``, every level
    (or those ``window`` keeps, in its bounds)."""
    batch = batch or DEFAULT_BATCH
    found = conn.execute(select(nodes.c.level).where(nodes.c.log_id == log_id).distinct()).scalars()
    out: dict[int, Iterator[tuple[int, bytes]]] = {}
    for level in map(int, found):
        bounds = (None, None) if window is None else window(level)
        if bounds is not None:
            out[level] = _iter_level(conn, log_id, level, bounds[0], bounds[1], batch)
    return out


def checkpoint_rows(conn: Connection, log_id: int) -> list[CheckpointRow]:
    """Every stored checkpoint of the log, with its ``size``/``root`` columns."""
    return [CheckpointRow(c.size, c.root, c.note) for c in list_checkpoints(conn, log_id)]


def rows_per_log(conn: Connection) -> dict[str, dict[int, int]]:
    """``{table: {log_id: number of rows}}`` for every table of :data:`TABLES_BY_LOG`."""
    counts: dict[str, dict[int, int]] = {}
    tables = (
        records, payloads, nodes, checkpoints, signing_keys, cosignatures, timestamps, data_keys
    )  # fmt: skip
    for name, table in zip(TABLES_BY_LOG, tables, strict=True):
        rows = conn.execute(select(table.c.log_id, func.count()).group_by(table.c.log_id))
        counts[name] = {int(log_id): int(n) for log_id, n in rows}
    return counts


def record_seqs_below(conn: Connection, log_id: int, size: int) -> tuple[int, int, int, int]:
    """(rows, distinct seqs, lowest seq, highest seq) of the log's records with ``seq < size``
    (0, 0, 0, -1 when there are none): the rows a resumed verification does not read are
    seq 0..size-1 exactly when this is (size, size, 0, size - 1)."""
    query = select(
        func.count(), func.count(records.c.seq.distinct()), func.min(records.c.seq),
        func.max(records.c.seq),
    ).where(records.c.log_id == log_id, records.c.seq < size)  # fmt: skip
    num, distinct, low, high = conn.execute(query).one()
    if not num:
        return 0, 0, 0, -1
    return int(num), int(distinct), int(low), int(high)


def anchor_sizes(conn: Connection, log_id: int) -> dict[str, set[int]]:
    """``{table: checkpoint sizes}`` that the log's ``cosignatures`` and ``timestamps`` rows
    name (each such row belongs to the stored checkpoint of its size)."""
    out: dict[str, set[int]] = {}
    for table in (cosignatures, timestamps):
        query = select(table.c.size).where(table.c.log_id == log_id).distinct()
        out[table.name] = {int(size) for size in conn.execute(query).scalars()}
    return out
