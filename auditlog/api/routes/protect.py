"""Legal holds and erasures (C15, C16): admins place and release holds and order erasures;
auditors list the holds and erasures of their tenants; operators get 403 (C17: holds and
erasures name principals, requests and legal matters, which are not the physical view).

Every write goes through :mod:`auditlog.protect` (the functions ``auditlog hold`` and
``auditlog erase`` call), signed by the API's administrative key (``api_admin_signing_key``,
whose name is the log's origin); its checkpoint then goes to the API's witnesses (C10). An
erasure a hold or a legal retention period blocks is refused with 409, and the refusal is a
signed record too. Who placed, released or ordered is the caller's API key id.

Reads are scoped as :mod:`auditlog.protect.listing` says: a hold or erasure of another tenant
is never shown, and by id it is the same 404 as a missing one (C19). Every answer, refusals
included, is preceded by a committed access record (C18).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from auditlog.errors import ConfigurationError, NotFoundError
from auditlog.protect import (
    ErasureOrder,
    ErasureRefusedError,
    HoldScope,
    erase,
    list_erasures,
    place_hold,
    release_hold,
)

from ..admin_writes import ADMIN_WRITES, admin_signer, witness_admin_log
from ..deps import AdminOnly, AdminOrAuditor, AuditDep, ConnDep, StateDep
from ..protect_views import erasure_public, hold_public, shown_erasures, shown_holds
from ..schemas import ErrorPublic
from ..schemas_protect import (
    ErasureList,
    ErasureOrderIn,
    ErasurePublic,
    HoldIn,
    HoldList,
    HoldPublic,
    HoldReleaseIn,
    HoldReleasePublic,
)
from . import ERROR_RESPONSES

__all__ = ["erasure_public", "hold_public", "router"]

router = APIRouter(prefix="/v1", tags=["holds and erasures"], responses=ERROR_RESPONSES)

RecordId = Annotated[str, Path(min_length=1, max_length=300, description="<log>#<seq>")]
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorPublic,
        "description": "the erasure is refused (a hold or a legal retention period covers a "
        "request); the refusal is a signed record",
    },
    503: {
        "model": ErrorPublic,
        "description": "no administrative signing key is configured, or no access record",
    },
}


def _request_ids(holds: list[HoldPublic]) -> list[str]:
    return [h.scope.request_id for h in holds if h.scope.request_id is not None]


@router.get("/holds", response_model=HoldList, summary="Legal holds in force")
def holds(key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep) -> HoldList:
    """The holds in force that the caller may see (auditors: those of their tenants only)."""
    with audit.reading() as access:
        items = shown_holds(conn, key, state)
        access.request_ids.extend(_request_ids(items))
        return HoldList(items=items)


@router.post(
    "/holds",
    response_model=HoldPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Place a legal hold",
    responses=_WRITE_ERRORS,
)
def place(body: HoldIn, key: AdminOnly, audit: AuditDep, state: StateDep) -> HoldPublic:
    """Place a hold as a signed ``hold.place`` record; erasure and retention of what it covers
    are refused until it is released."""
    scope = body.scope
    with audit.reading(*[scope.request_id] if scope.request_id else [], ok=201):
        signer = admin_signer(state)
        with ADMIN_WRITES:
            hold = place_hold(
                state.engine,
                HoldScope(
                    tenant=scope.tenant,
                    principal=scope.principal,
                    request_id=scope.request_id,
                    start_ns=scope.from_ts,
                    end_ns=scope.to_ts,
                ),
                by=key.id,
                reason=body.reason,
                signer=signer,
            )
        witness_admin_log(state, signer)
        return hold_public(hold)


@router.post(
    "/holds/{hold_id:path}/release",
    response_model=HoldReleasePublic,
    summary="Release a legal hold",
    responses=_WRITE_ERRORS,
)
def release(
    hold_id: RecordId, body: HoldReleaseIn, key: AdminOnly, audit: AuditDep, state: StateDep
) -> HoldReleasePublic:
    """Release a hold in force as a signed ``hold.release`` record (404: none in force)."""
    with audit.reading():
        signer = admin_signer(state)
        with ADMIN_WRITES:
            release_hold(state.engine, hold_id, by=key.id, reason=body.reason, signer=signer)
        witness_admin_log(state, signer)
        return HoldReleasePublic(id=hold_id, released_by=key.id, reason=body.reason)


@router.get("/holds/{hold_id:path}", response_model=HoldPublic, summary="A legal hold")
def hold(
    hold_id: RecordId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> HoldPublic:
    """One hold in force; 404 when it is released, unknown or not the caller's to see."""
    with audit.reading() as access:
        found = next((h for h in shown_holds(conn, key, state) if h.id == hold_id), None)
        if found is None:
            raise NotFoundError(f"no hold {hold_id!r} in force")
        access.request_ids.extend(_request_ids([found]))
        return found


@router.get("/erasures", response_model=ErasureList, summary="Erasures and refused erasures")
def erasures(key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep) -> ErasureList:
    """Erasures and refused erasures, oldest first (auditors: their tenants' requests only)."""
    with audit.reading() as access:
        items = shown_erasures(conn, key, state)
        access.request_ids.extend(r.request_id for e in items for r in e.requests)
        return ErasureList(items=items)


@router.post(
    "/erasures",
    response_model=ErasurePublic,
    status_code=status.HTTP_201_CREATED,
    summary="Erase requests' content (crypto-shredding)",
    responses=_WRITE_ERRORS,
)
def order_erasure(
    body: ErasureOrderIn, key: AdminOnly, audit: AuditDep, conn: ConnDep, state: StateDep
) -> ErasurePublic:
    """A signed ``erasure`` record, then the requests' data keys are destroyed. Refused (409,
    nothing destroyed, the refusal a signed record) when a hold or a legal retention period
    covers one of them; 404 when nothing selected has a data key left."""
    with audit.reading(*body.request_ids, ok=201) as access:
        signer = admin_signer(state)
        order = ErasureOrder(
            by=key.id,
            reason=body.reason,
            legal_basis=body.legal_basis,
            request_ids=body.request_ids,
            tenant=body.tenant,
            principal=body.principal,
            subject=body.subject,
        )
        try:
            with ADMIN_WRITES:
                result = erase(state.engine, order, signer=signer)
        except ErasureRefusedError:  # a refusal is a signed record too
            witness_admin_log(state, signer)
            raise
        except ConfigurationError as exc:  # an order protect cannot carry out as given
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        witness_admin_log(state, signer)
        entry_id = f"{result.origin}#{result.seq}"
        # read back from the primary: ``conn`` may be a read replica that has not replayed it yet
        with state.engine.connect() as written:
            entry = next(
                e
                for e in list_erasures(written, [signer.verifier], log_keys=state.trusted)
                if e.entry_id == entry_id
            )
        access.request_ids[:] = [t.request_id for t in entry.targets]
        return erasure_public(entry)


@router.get("/erasures/{erasure_id:path}", response_model=ErasurePublic, summary="An erasure")
def erasure(
    erasure_id: RecordId, key: AdminOrAuditor, audit: AuditDep, conn: ConnDep, state: StateDep
) -> ErasurePublic:
    """One erasure or refusal; 404 when unknown or not the caller's to see."""
    with audit.reading() as access:
        found = next((e for e in shown_erasures(conn, key, state) if e.id == erasure_id), None)
        if found is None:
            raise NotFoundError(f"no erasure {erasure_id!r}")
        access.request_ids.extend(r.request_id for r in found.requests)
        return found
