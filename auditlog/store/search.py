"""SQL reads behind the search endpoints: requests by tenant/time/principal/model/outcome, and
physical step manifests. Keyset pagination on ``(ts, log_id, seq)``; cursors are opaque
(:mod:`auditlog.store.cursors`).

Searches filter on the indexed copies of header fields (``tenant``, ``kind``, ``ts``) and on
fields read from the header bytes in SQL (``principal``, ``target.name``, ``reason``); a row
whose header names a tenant outside the caller's is dropped, as the trail drops it. They read
only inside each log's readable range ``[0, size)`` (``bounds``, from
:func:`auditlog.store.trail_reads.log_bounds`): a row outside it, or in a log without a signed
checkpoint, is never listed. They do not verify; the trail endpoint does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased

from auditlog.ledger import RecordKind
from auditlog.store.cursors import decode_cursor, next_cursor
from auditlog.store.schema import logs, records

__all__ = [
    "RequestRow",
    "SearchFilter",
    "StepRow",
    "search_requests",
    "search_steps",
]


def _json_text(conn: Connection, body: Any, *path: str) -> ColumnElement[Any]:
    """SQL expression: the string at ``path`` in the JSON header bytes ``body``."""
    if conn.dialect.name == "sqlite":
        return func.json_extract(cast(body, Text), "$." + ".".join(path))
    document = cast(func.convert_from(body, "UTF8"), JSONB)
    return document[path].astext  # type: ignore[no-any-return]


def _within(table: Any, bounds: Mapping[int, int]) -> ColumnElement[bool]:
    """SQL condition: the row lies in its log's readable range ``[0, bounds[log_id])``.

    Written as ``log_id IN (...) AND seq < CASE log_id ...`` (not an OR per log), so that the
    planner keeps its index on ``log_id`` and the joins keep theirs."""
    if not bounds:
        return false()
    ids = sorted(bounds)
    limit = case({i: bounds[i] for i in ids}, value=table.c.log_id, else_=0)
    return and_(table.c.log_id.in_(ids), table.c.seq >= 0, table.c.seq < limit)


def _loads(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    return value if isinstance(value, str) else ""


def _int(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    return value if type(value) is int else None


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Search criteria; ``tenants`` None means every tenant (admins)."""

    tenants: Collection[str] | None
    since: int | None = None
    until: int | None = None
    principal: str | None = None
    model: str | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    request_id: str
    log: str
    tenant: str
    principal: str
    model: str
    started_ts: int
    finished_ts: int | None
    finish_reason: str | None
    n_generated: int | None


def search_requests(
    conn: Connection,
    criteria: SearchFilter,
    *,
    bounds: Mapping[int, int],
    cursor: str | None,
    limit: int,
) -> tuple[list[RequestRow], str | None]:
    """One page of requests matching ``criteria``, oldest first; returns (rows, next cursor).

    ``bounds`` maps each readable log's id to its size (module docstring)."""
    if criteria.tenants is not None and not criteria.tenants:
        return [], None
    stmt = _requests_query(conn, criteria, bounds)
    if cursor is not None:
        stmt = stmt.where(
            tuple_(records.c.ts, records.c.log_id, records.c.seq) > decode_cursor(cursor)
        )
    stmt = stmt.order_by(records.c.ts, records.c.log_id, records.c.seq).limit(limit + 1)
    rows = conn.execute(stmt).all()
    items = [item for row in rows[:limit] if (item := _request_row(row, criteria)) is not None]
    return items, next_cursor(rows, limit)


def _requests_query(
    conn: Connection, criteria: SearchFilter, bounds: Mapping[int, int]
) -> Select[Any]:
    """Each ``request_start`` record within ``bounds`` that matches ``criteria``, with the
    ``request_end`` record of its request if there is one."""
    start = records
    end = aliased(records, name="req_end")
    stmt = (
        select(
            start.c.ts,
            start.c.log_id,
            start.c.seq,
            start.c.request_id,
            start.c.tenant,
            start.c.body,
            end.c.body,
            end.c.ts,
            logs.c.origin,
        )
        .join(logs, logs.c.id == start.c.log_id)
        .outerjoin(
            end,
            and_(
                end.c.log_id == start.c.log_id,
                end.c.request_id == start.c.request_id,
                end.c.kind == RecordKind.REQUEST_END.value,
                # Always true for chain records; without ANALYZE statistics it steers SQLite to
                # the (log_id, request_id, req_seq) index instead of scanning the log by its key.
                end.c.req_seq >= 0,
                _within(end, bounds),
            ),
        )
        .where(start.c.kind == RecordKind.REQUEST_START.value, _within(start, bounds))
    )
    if criteria.tenants is not None:
        stmt = stmt.where(start.c.tenant.in_(sorted(criteria.tenants)))
    if criteria.since is not None:
        stmt = stmt.where(start.c.ts >= criteria.since)
    if criteria.until is not None:
        stmt = stmt.where(start.c.ts < criteria.until)
    if criteria.principal is not None:
        stmt = stmt.where(_json_text(conn, start.c.body, "principal") == criteria.principal)
    if criteria.model is not None:
        stmt = stmt.where(_json_text(conn, start.c.body, "target", "name") == criteria.model)
    if criteria.finish_reason is not None:
        stmt = stmt.where(_json_text(conn, end.c.body, "reason") == criteria.finish_reason)
    return stmt


def _request_row(row: Any, criteria: SearchFilter) -> RequestRow | None:
    """The :class:`RequestRow` of one row of :func:`_requests_query`, or None if its header
    names a tenant outside ``criteria``."""
    ts, _log_id, _seq, request_id, _column, body, end_body, end_ts, origin = row
    head, tail = _loads(body), _loads(end_body)
    tenant = head.get("tenant")
    if criteria.tenants is not None and tenant not in criteria.tenants:
        return None  # the indexed column is an unsigned copy: the header's tenant decides (C19)
    target = head.get("target")
    return RequestRow(
        request_id=request_id,
        log=origin,
        tenant=tenant if isinstance(tenant, str) else "",
        principal=_str(head, "principal"),
        model=_str(target, "name") if isinstance(target, dict) else "",
        started_ts=ts,
        finished_ts=end_ts,
        finish_reason=tail.get("reason") if isinstance(tail.get("reason"), str) else None,
        n_generated=_int(tail, "n_generated"),
    )


@dataclass(frozen=True, slots=True)
class StepRow:
    log: str
    seq: int
    ts: int
    step: int
    n: int
    passes: int | None
    batch: list[tuple[str, int]]


def search_steps(
    conn: Connection,
    *,
    bounds: Mapping[int, int],
    origin: str | None,
    since: int | None,
    until: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[StepRow], str | None]:
    """One page of physical step manifests (``step`` records) within ``bounds``, oldest first."""
    stmt = (
        select(records.c.ts, records.c.log_id, records.c.seq, records.c.body, logs.c.origin)
        .join(logs, logs.c.id == records.c.log_id)
        .where(records.c.kind == RecordKind.STEP.value, _within(records, bounds))
    )
    if origin is not None:
        stmt = stmt.where(logs.c.origin == origin)
    if since is not None:
        stmt = stmt.where(records.c.ts >= since)
    if until is not None:
        stmt = stmt.where(records.c.ts < until)
    if cursor is not None:
        stmt = stmt.where(
            tuple_(records.c.ts, records.c.log_id, records.c.seq) > decode_cursor(cursor)
        )
    stmt = stmt.order_by(records.c.ts, records.c.log_id, records.c.seq).limit(limit + 1)
    rows = conn.execute(stmt).all()
    items = []
    for ts, _log_id, seq, body, origin_ in rows[:limit]:
        head = _loads(body)
        batch = head.get("batch")
        pairs = [
            (entry[0], entry[1])
            for entry in (batch if isinstance(batch, list) else [])
            if isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and type(entry[1]) is int
        ]
        items.append(
            StepRow(
                log=origin_,
                seq=seq,
                ts=ts,
                step=_int(head, "step") or 0,
                n=_int(head, "n") or 0,
                passes=_int(head, "passes"),
                batch=pairs,
            )
        )
    return items, next_cursor(rows, limit)
