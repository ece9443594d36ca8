"""The API's administrative writes (holds, releases, erasures): signed by its administrative key
(``api_admin_signing_key``, whose name is the log's origin), one at a time from this process,
and the resulting checkpoint handed to the API's witnesses (C10)."""

from __future__ import annotations

import threading

import structlog
from fastapi import HTTPException, status

from auditlog.ledger import Signer
from auditlog.protect.admin_log import hand_to_witnesses

from .deps import ApiState

__all__ = ["ADMIN_WRITES", "admin_signer", "witness_admin_log"]

log = structlog.get_logger("auditlog.api.protect")
#: One administrative write at a time from this process (the log has one sequence).
ADMIN_WRITES = threading.Lock()


def admin_signer(state: ApiState) -> Signer:
    """The API's administrative signer; 503 when none is configured."""
    if state.admin_signer is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "this API has no administrative signing key (AUDITLOG_API_ADMIN_SIGNING_KEY): "
            "holds and erasures cannot be recorded through it",
        )
    return state.admin_signer


def witness_admin_log(state: ApiState, signer: Signer) -> None:
    """Hand the administrative checkpoint to the API's witnesses, after the commit; a witness
    that fails is logged, like the access log's (the decision stands, signed)."""
    try:
        hand_to_witnesses(state.engine, signer.name, state.access_log.witnesses)
    except Exception:
        log.exception("admin_log.witness_failed", origin=signer.name)
