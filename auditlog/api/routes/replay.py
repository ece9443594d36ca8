"""Replay: re-run a request from its verified trail and compare token by token (auditor, admin).

``POST /v1/requests/{id}/replay`` verifies the trail against the log's checkpoint with the API's
trusted keys, then replays it alone on the reference engine with the models found by digest
under ``api_replay_model_dir`` (docs/REPLAY.md). Tenant-scoped like every trail read: another
tenant's request answers 404 (C19); the read is an access record committed first (C18).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from auditlog.bundle.export import build_bundle
from auditlog.store.trail_reads import covering_checkpoint, find_trail, signing_keys_of

from ..deps import AdminOrAuditor, AuditDep, ConnDep, StateDep
from . import ERROR_RESPONSES

__all__ = ["DivergencePublic", "ReplayPublic", "router"]

router = APIRouter(prefix="/v1/requests", tags=["replay"], responses=ERROR_RESPONSES)

RequestId = Annotated[str, Path(min_length=1, max_length=255, description="request id")]


class DivergencePublic(BaseModel):
    """The first generated position where record and replay differ (null: that side ended)."""

    index: int
    recorded_token: int | None
    replayed_token: int | None
    recorded_provenance: str | None
    replayed_provenance: str | None


class ReplayPublic(BaseModel):
    """Outcome of a replay: identical, divergent, refused (with the reason) or unverified."""

    request_id: str
    status: str = Field(description="identical | divergent | refused | unverified")
    reason: str
    trust: str | None = Field(description="trusted | untrusted key verified the trail")
    num_recorded: int
    num_replayed: int
    divergence: DivergencePublic | None
    draft_step: int | None = Field(
        default=None, description="first speculative step whose draft proposals differ"
    )


@router.post("/{request_id:path}/replay", response_model=ReplayPublic, summary="Replay a request")
def replay_request(
    request_id: RequestId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> ReplayPublic:
    """Verify the trail, re-run it alone and compare every token and its provenance."""
    from auditlog.replay import DEFAULT_MODEL_DIR, replay_bundle

    with audit.reading(request_id):
        stored = find_trail(conn, request_id, tenants=key.read_scope, trusted=state.trusted)
        checkpoint = covering_checkpoint(conn, stored, state.trusted)
        keys = signing_keys_of(
            conn, stored.log_id, checkpoint.note, state.settings.api_trusted_keys
        )
        bundle = build_bundle(conn, stored, checkpoint, keys)
    model_dir = state.settings.api_replay_model_dir or DEFAULT_MODEL_DIR
    result, trust = replay_bundle(bundle, state.trusted, model_dir=model_dir)
    div = result.divergence
    return ReplayPublic(
        request_id=result.request_id,
        status=result.status.value,
        reason=result.reason,
        trust=None if trust is None else trust.value,
        num_recorded=result.num_recorded,
        num_replayed=result.num_replayed,
        divergence=None
        if div is None
        else DivergencePublic(
            index=div.index,
            recorded_token=div.recorded_token,
            replayed_token=div.replayed_token,
            recorded_provenance=div.recorded_provenance,
            replayed_provenance=div.replayed_provenance,
        ),
        draft_step=result.draft_step,
    )
