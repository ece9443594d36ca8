"""Physical step manifests for operators (C17): which requests shared a batch, how many tokens
each took. Manifests hold request ids and counts only, never content."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from auditlog.store.cursors import MAX_SQL_INT
from auditlog.store.search import search_steps
from auditlog.store.signed_checkpoints import log_bounds

from ..deps import AdminOrOperator, AuditDep, ConnDep, StateDep
from ..schemas import StepManifestPublic, StepPage
from ..settings import MAX_PAGE_SIZE
from . import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/v1/steps", tags=["operator"], responses=ERROR_RESPONSES)

Nanos = Query(ge=0, le=MAX_SQL_INT, description="ns since the Unix epoch, UTC")


@router.get("", response_model=StepPage, summary="Physical step manifests")
def steps(
    key: AdminOrOperator,
    audit: AuditDep,
    conn: ConnDep,
    state: StateDep,
    log: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    since: Annotated[int | None, Nanos] = None,
    until: Annotated[int | None, Nanos] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> StepPage:
    """Step manifests in ``[since, until)``, oldest first."""
    size = min(limit or state.settings.api_default_page_size, state.settings.api_max_page_size)
    with audit.reading():
        bounds = {i: b.checkpoint.size for i, b in log_bounds(conn, state.trusted).items()}
        rows, next_cursor = search_steps(
            conn, bounds=bounds, origin=log, since=since, until=until, cursor=cursor, limit=size
        )
        return StepPage(
            items=[StepManifestPublic.model_validate(r, from_attributes=True) for r in rows],
            next_cursor=next_cursor,
        )
