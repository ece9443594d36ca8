"""Holds and erasures as the API shows them (C15, C16): only those proven under the API's
administrative key (without one, under its trusted keys), scoped to the caller's tenants as
:mod:`auditlog.protect.listing` says, in their public models."""

from __future__ import annotations

from sqlalchemy import Connection

from auditlog.protect import (
    ErasureEntry,
    Hold,
    list_erasures,
    list_holds,
    visible_erasures,
    visible_holds,
)

from .deps import ApiState
from .keys import ApiKey
from .schemas_protect import ErasurePublic, ErasureTargetPublic, HoldPublic, HoldScopePublic

__all__ = ["erasure_public", "hold_public", "shown_erasures", "shown_holds"]


def hold_public(hold: Hold) -> HoldPublic:
    scope = hold.scope
    return HoldPublic(
        id=hold.hold_id,
        scope=HoldScopePublic(
            tenant=scope.tenant,
            principal=scope.principal,
            request_id=scope.request_id,
            from_ts=scope.start_ns,
            to_ts=scope.end_ns,
        ),
        reason=hold.reason,
        placed_by=hold.placed_by,
        placed_ts=hold.placed_ts,
    )


def erasure_public(entry: ErasureEntry) -> ErasurePublic:
    return ErasurePublic(
        id=entry.entry_id,
        outcome=entry.outcome,
        principal=entry.principal,
        reason=entry.reason,
        legal_basis=entry.legal_basis,
        ts=entry.ts,
        requests=[
            ErasureTargetPublic(
                log=t.log, request_id=t.request_id, tenant=t.tenant, because=t.because
            )
            for t in entry.targets
        ],
    )


def shown_holds(conn: Connection, key: ApiKey, state: ApiState) -> list[HoldPublic]:
    """The holds in force proven under the API's administrative key (C15; without one, under
    its trusted keys): a hold or release row no checkpoint of that key covers does not count."""
    signer = state.admin_signer
    if signer is not None:
        in_force = list_holds(conn, [signer.verifier], own=signer.name)
    else:
        # the engines' keys: their logs are large and hold no holds, so only a log holding
        # administrative records by its kind column is proven (none is named like a key)
        in_force = list_holds(conn, state.trusted, by_key_name=False)
    shown = visible_holds(conn, in_force, key.read_scope, log_keys=state.trusted)
    return [hold_public(h) for h in shown]


def shown_erasures(conn: Connection, key: ApiKey, state: ApiState) -> list[ErasurePublic]:
    """The erasures and refusals proven under the API's administrative key (without one, under
    its trusted keys): an erasure row no checkpoint of that key covers is not listed (C16)."""
    entries = list_erasures(
        conn,
        state.admin_keys or state.trusted,
        log_keys=state.trusted,
        by_key_name=bool(state.admin_keys),
    )
    return [erasure_public(e) for e in visible_erasures(entries, key.read_scope)]
