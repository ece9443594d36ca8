"""Logs: list, latest signed checkpoint, consistency proofs, verifier keys (every role).

None of these answers holds content; operators use them to watch the logs' growth (C17).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from auditlog.errors import NoCheckpointError
from auditlog.ledger import consistency_proof
from auditlog.store.cursors import MAX_SQL_INT, InvalidQueryError
from auditlog.store.ledger_store import (
    StoredNodeSource,
    get_checkpoint,
    get_log_id,
    latest_checkpoint,
    list_keys,
    list_logs,
)

from ..anchors import witness_state
from ..deps import AuditDep, ConnDep, KeyDep, StateDep
from ..schemas import ConsistencyProofPublic, LogPublic, VerifierKeysPublic, WitnessStatePublic
from . import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/v1/logs", tags=["logs"], responses=ERROR_RESPONSES)

Origin = Annotated[str, Query(min_length=1, max_length=255, description="the log's origin")]
Size = Annotated[int, Query(ge=1, le=MAX_SQL_INT)]


@router.get("", response_model=list[LogPublic], summary="Logs in the store")
def logs(key: KeyDep, audit: AuditDep, conn: ConnDep) -> list[LogPublic]:
    """Every log with the size of its latest signed checkpoint."""
    with audit.reading():
        result = []
        for info in list_logs(conn):
            checkpoint = latest_checkpoint(conn, info.id)
            result.append(
                LogPublic(
                    origin=info.origin,
                    checkpoint_size=None if checkpoint is None else checkpoint.size,
                )
            )
        return result


@router.get(
    "/checkpoint",
    summary="Latest signed checkpoint",
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def checkpoint(log: Origin, key: KeyDep, audit: AuditDep, conn: ConnDep) -> PlainTextResponse:
    """The log's latest checkpoint as a C2SP signed note (text/plain)."""
    with audit.reading():
        log_id = get_log_id(conn, log)
        latest = latest_checkpoint(conn, log_id)
        if latest is None:
            raise NoCheckpointError(f"log {log!r} has no signed checkpoint yet")
        note = latest.note
    return PlainTextResponse(note)


@router.get(
    "/witnesses", response_model=WitnessStatePublic, summary="Witness state of a checkpoint"
)
def witnesses(
    log: Origin,
    key: KeyDep,
    audit: AuditDep,
    conn: ConnDep,
    state: StateDep,
    size: Annotated[int | None, Query(ge=1, le=MAX_SQL_INT)] = None,
) -> WitnessStatePublic:
    """The witnesses' cosignatures of the log's latest checkpoint (or the one at ``size``),
    each checked against the configured witness policy (AUDITLOG_WITNESS_POLICY), whether the
    policy holds, and the checkpoint's RFC 3161 trusted time (AUDITLOG_TSA_CERT)."""
    with audit.reading():
        log_id = get_log_id(conn, log)
        stored = (
            latest_checkpoint(conn, log_id) if size is None else get_checkpoint(conn, log_id, size)
        )
        if stored is None:
            raise NoCheckpointError(f"log {log!r} has no signed checkpoint yet")
        public, _ = witness_state(conn, log, log_id, stored.size, stored.note, state.outside)
        return public


@router.get("/consistency", response_model=ConsistencyProofPublic, summary="Consistency proof")
def consistency(
    log: Origin, first: Size, second: Size, key: KeyDep, audit: AuditDep, conn: ConnDep
) -> ConsistencyProofPublic:
    """RFC 9162 consistency proof between two checkpointed sizes ``first <= second``."""
    with audit.reading():
        if first > second:
            raise InvalidQueryError(f"first ({first}) must not exceed second ({second})")
        log_id = get_log_id(conn, log)
        old, new = get_checkpoint(conn, log_id, first), get_checkpoint(conn, log_id, second)
        proof = consistency_proof(first, second, StoredNodeSource(conn, log_id))
        return ConsistencyProofPublic(
            log=log,
            first=first,
            second=second,
            first_root=old.root.hex(),
            second_root=new.root.hex(),
            proof=[h.hex() for h in proof],
        )


@router.get("/keys", response_model=VerifierKeysPublic, summary="Verifier keys")
def keys(log: Origin, key: KeyDep, audit: AuditDep, conn: ConnDep) -> VerifierKeysPublic:
    """Public keys (note verifier form) that sign or signed the log's checkpoints (C12)."""
    with audit.reading():
        stored = list_keys(conn, get_log_id(conn, log))
        return VerifierKeysPublic(
            log=log,
            keys=[k.verifier_key for k in stored],
            retired=[k.verifier_key for k in stored if k.retired is not None],
        )
