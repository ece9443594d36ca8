"""Console pages without content: step manifests (operator, admin) and the access log (admin).

The access log page reads the API's own log (origin ``api_origin``) through the store's
range-bounded record reader, newest first; it shows who read what and when, as recorded. It
does not verify that log: ``auditlog verify --log <api origin>`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response

from auditlog.errors import FormatError, NotFoundError
from auditlog.ledger import parse_header
from auditlog.store.ledger_store import get_log_id, iter_records, latest_checkpoint

from ..deps import ConnDep, StateDep
from ..keys import Role, list_keys
from ..routes import steps as api_steps
from .forms import optional, parse_when
from .pages import ConsoleRoute, PageDep, render

__all__ = ["ACCESS_PAGE_SIZE", "router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

#: Access records per page of the access log.
ACCESS_PAGE_SIZE = 50
When = Annotated[str | None, Query(max_length=40)]


@router.get("/steps")
def steps_page(
    page: PageDep,
    conn: ConnDep,
    state: StateDep,
    log: Annotated[str | None, Query(max_length=255)] = None,
    since: When = None,
    until: When = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Physical step manifests of a time range: request ids and token counts, never content."""
    page.require(Role.OPERATOR, Role.ADMIN)
    result = api_steps.steps(
        page.key,
        page.audit,
        conn,
        state,
        log=optional(log),
        since=parse_when(since, "From"),
        until=parse_when(until, "Until"),
        cursor=optional(cursor),
        limit=None,
    )
    query = {k: v for k, v in page.request.query_params.items() if v and k != "cursor"}
    next_url = None
    if result.next_cursor is not None:
        next_url = "/console/steps?" + urlencode({**query, "cursor": result.next_cursor})
    return render(
        page.request, "steps.html", page, form=query, items=result.items, next_url=next_url
    )


@dataclass(frozen=True, slots=True)
class AccessRow:
    seq: int
    ts: int
    principal: str
    label: str
    role: str
    endpoint: str
    params: dict[str, Any]
    request_ids: list[str]
    status: int | None
    reason: str | None


def _row(seq: int, ts: int, header: dict[str, Any], labels: dict[str, str]) -> AccessRow:
    principal = str(header.get("principal", ""))
    params, ids, code = header.get("params"), header.get("request_ids"), header.get("status")
    return AccessRow(
        seq=seq,
        ts=ts,
        principal=principal,
        label=labels.get(principal, ""),
        role=str(header.get("role", "")),
        endpoint=str(header.get("endpoint", "")),
        params=params if isinstance(params, dict) else {},
        request_ids=[str(r) for r in ids] if isinstance(ids, list) else [],
        status=code if type(code) is int else None,
        reason=header.get("reason") if isinstance(header.get("reason"), str) else None,
    )


@router.get("/access")
def access_page(
    page: PageDep,
    conn: ConnDep,
    state: StateDep,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    """The API's access log, newest first: who read what, when, and why."""
    page.require(Role.ADMIN)
    rows: list[AccessRow] = []
    size = start = 0
    with page.audit.reading():
        try:
            log_id: int | None = get_log_id(conn, state.settings.api_origin)
        except NotFoundError:
            log_id = None
        checkpoint = None if log_id is None else latest_checkpoint(conn, log_id)
        if log_id is not None and checkpoint is not None:
            size = checkpoint.size
            stop = size if before is None else min(before, size)
            start = max(0, stop - ACCESS_PAGE_SIZE)
            labels = {k.id: k.label for k in list_keys(conn)}
            for record in iter_records(conn, log_id, start, stop):
                try:
                    header = parse_header(bytes(record.body))
                except FormatError:
                    header = {}
                rows.append(_row(record.seq, record.ts, header, labels))
            rows.reverse()
    older_url = f"/console/access?before={start}" if rows and start > 0 else None
    return render(
        page.request,
        "access.html",
        page,
        rows=rows,
        size=size,
        origin=state.settings.api_origin,
        older_url=older_url,
    )
