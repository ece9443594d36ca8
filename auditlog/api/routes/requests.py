"""Requests: search, trail, inclusion proofs, evidence bundle, HTML transcript (auditor, admin).

A request of another tenant answers 404 with the same body as a request that does not exist
(C19). Every answer, errors included, is preceded by a committed access record (C18).

Every read goes through the store's one bounded read path (``auditlog.store.trail_reads``): only
records covered by the log's newest signed checkpoint are shown; a request id claimed by two
logs answers 409. Request ids hold ``/`` (``tenant/id``, as ``auditlog serve`` names them): the
path parameter takes the rest of the path, so ``/v1/requests/acme/req-1/bundle`` works as is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse

from auditlog.bundle.export import build_bundle, with_erasure, with_outside_anchors
from auditlog.bundle.format import encode_bundle
from auditlog.ledger import leaf_hash
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.cursors import MAX_SQL_INT
from auditlog.store.ledger_store import StoredNodeSource
from auditlog.store.search import SearchFilter, search_requests
from auditlog.store.trail_reads import (
    StoredTrail,
    covering_checkpoint,
    find_trail,
    log_bounds,
    signing_keys_of,
)

from ..deps import AdminOrAuditor, ApiState, AuditDep, ConnDep, StateDep
from ..html import render_transcript
from ..keys import ApiKey
from ..schemas import (
    CheckpointPublic,
    InclusionProofPublic,
    ProofsPublic,
    RequestPage,
    RequestSummary,
    TrailPublic,
)
from ..settings import MAX_PAGE_SIZE
from ..trail import trail_public
from . import ERROR_RESPONSES

__all__ = ["BUNDLE_MEDIA_TYPE", "router"]

#: Media type of an evidence bundle (canonical JSON, docs/FORMAT.md section 9).
BUNDLE_MEDIA_TYPE = "application/vnd.auditlog.bundle+json"

router = APIRouter(prefix="/v1/requests", tags=["requests"], responses=ERROR_RESPONSES)

RequestId = Annotated[str, Path(min_length=1, max_length=255, description="request id")]

#: ``{request_id:path}``: ids of the form ``tenant/id`` (``auditlog serve``) match as they are.
_ID = "/{request_id:path}"
Nanos = Query(ge=0, le=MAX_SQL_INT, description="ns since the Unix epoch, UTC")


def _find(conn: ConnDep, request_id: str, key: ApiKey, state: ApiState) -> StoredTrail:
    return find_trail(conn, request_id, tenants=key.read_scope, trusted=state.trusted)


@router.get("", response_model=RequestPage, summary="Search requests")
def search(
    key: AdminOrAuditor,
    audit: AuditDep,
    conn: ConnDep,
    state: StateDep,
    tenant: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[int | None, Nanos] = None,
    until: Annotated[int | None, Nanos] = None,
    principal: Annotated[str | None, Query(max_length=255)] = None,
    model: Annotated[str | None, Query(max_length=255)] = None,
    finish_reason: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> RequestPage:
    """Requests of the caller's tenants started in ``[since, until)``, oldest first.

    A ``tenant`` outside the caller's scope matches nothing (it is not an error: C19).
    """
    scope = key.read_scope
    if tenant is not None:
        scope = (tenant,) if scope is None or tenant in scope else ()
    size = min(limit or state.settings.api_default_page_size, state.settings.api_max_page_size)
    with audit.reading() as access:
        bounds = {i: b.checkpoint.size for i, b in log_bounds(conn, state.trusted).items()}
        rows, next_cursor = search_requests(
            conn,
            SearchFilter(
                tenants=scope,
                since=since,
                until=until,
                principal=principal,
                model=model,
                finish_reason=finish_reason,
            ),
            bounds=bounds,
            cursor=cursor,
            limit=size,
        )
        access.request_ids.extend(row.request_id for row in rows)
        return RequestPage(
            items=[RequestSummary.model_validate(row, from_attributes=True) for row in rows],
            next_cursor=next_cursor,
        )


@router.get(_ID + "/proofs", response_model=ProofsPublic, summary="Inclusion proofs")
def proofs(
    request_id: RequestId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> ProofsPublic:
    """RFC 9162 inclusion proof of every shown record against the newest signed checkpoint."""
    with audit.reading(request_id):
        stored = _find(conn, request_id, key, state)
        checkpoint = stored.bound.checkpoint
        covered = stored.records
        source = StoredNodeSource(conn, stored.log_id)
        paths = inclusion_proofs([r.seq for r in covered], checkpoint.size, source)
        return ProofsPublic(
            request_id=request_id,
            checkpoint=CheckpointPublic(
                log=stored.origin,
                size=checkpoint.size,
                root=checkpoint.root.hex(),
                note=checkpoint.note,
            ),
            proofs=[
                InclusionProofPublic(
                    seq=r.seq,
                    leaf=leaf_hash(bytes(r.body)).hex(),
                    proof=[h.hex() for h in path],
                )
                for r, path in zip(covered, paths, strict=True)
            ],
        )


@router.get(
    _ID + "/bundle",
    summary="Evidence bundle",
    response_model=None,
    responses={200: {"content": {BUNDLE_MEDIA_TYPE: {"schema": {"type": "object"}}}}},
)
def bundle(
    request_id: RequestId,
    key: AdminOrAuditor,
    audit: AuditDep,
    conn: ConnDep,
    state: StateDep,
    checkpoint_size: Annotated[int | None, Query(ge=1, le=MAX_SQL_INT)] = None,
) -> Response:
    """Self-verifying bundle (docs/FORMAT.md section 9), pinned to the earliest checkpoint
    covering the trail (or ``checkpoint_size``): the same request always gives the same bytes
    (C20)."""
    with audit.reading(request_id):
        stored = _find(conn, request_id, key, state)
        checkpoint = covering_checkpoint(conn, stored, state.trusted, at_size=checkpoint_size)
        keys = signing_keys_of(
            conn, stored.log_id, checkpoint.note, state.settings.api_trusted_keys
        )
        checkpoint, timestamp = with_outside_anchors(conn, stored.log_id, checkpoint)
        built = build_bundle(conn, stored, checkpoint, keys, timestamp)
        # after an erasure: the erasure record and no payloads (bundle/export.py, C16)
        data = encode_bundle(
            with_erasure(conn, built, stored, state.trusted, state.settings.api_trusted_keys)
        )
    return Response(content=data, media_type=BUNDLE_MEDIA_TYPE)


@router.get(
    _ID + "/transcript.html",
    summary="HTML transcript",
    response_model=None,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def transcript_html(
    request_id: RequestId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> HTMLResponse:
    """The trail as a human-readable, escaped HTML page."""
    with audit.reading(request_id):
        stored = _find(conn, request_id, key, state)
        page = render_transcript(
            trail_public(
                conn,
                stored,
                state.trusted,
                state.settings.api_trusted_keys,
                state.key_provider(),
                state.outside,
                state.admin_keys,
            )
        )
    return HTMLResponse(page)


# Declared last: ``{request_id:path}`` would otherwise swallow the suffixed routes above. An id
# whose last segment is ``proofs``, ``bundle``, ``transcript.html`` or ``trail`` is read with the
# explicit ``/trail`` form.
@router.get(_ID, response_model=TrailPublic, summary="A request's trail")
@router.get(  # the lower decorator registers first: /trail before the catch-all form
    _ID + "/trail",
    response_model=TrailPublic,
    summary="A request's trail (explicit form)",
    operation_id="trail_explicit",
)
def trail(
    request_id: RequestId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> TrailPublic:
    """Metadata, transcript with each token's provenance and step, raw records and a verdict."""
    with audit.reading(request_id):
        stored = _find(conn, request_id, key, state)
        return trail_public(
            conn,
            stored,
            state.trusted,
            state.settings.api_trusted_keys,
            state.key_provider(),
            state.outside,
            state.admin_keys,
        )
