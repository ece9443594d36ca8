"""Crypto-shredding (C16): destroy requests' data keys under a signed ``erasure`` record.

An erasure appends one ``erasure`` record (who, why, legal basis, which requests) to an
administrative log, signs a checkpoint over it, and deletes the requests' wrapped data keys, in
one transaction: either the record and the deletion both happen or neither does. The sealed
payloads stay in the append-only ledger and keep verifying (their digests are over ciphertext);
without the data key nobody, the holder of the tenant's KEK included, can open them again.

An erasure of a request under a legal hold (C15), or still inside a legal retention period
(C14, GDPR Art. 17(3)(b)), is refused: nothing is shredded, and an ``admin`` record
``erase.refused`` says who asked, why, and what blocked it.

The administrative log has one writer like every log: give it its own origin (the signing key's
name), never the origin a running recorder writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from auditlog.errors import AuditlogError, ConfigurationError, NotFoundError
from auditlog.ledger import RecordKind, Signer, parse_header
from auditlog.protect.admin_log import append_admin_record
from auditlog.protect.holds import Hold, list_holds
from auditlog.store import delete_data_keys, keyed_requests, purge_freed_keys

__all__ = ["ErasureOrder", "ErasureRefusedError", "ErasureResult", "erase", "shred_due"]


class ErasureRefusedError(AuditlogError):
    """An erasure blocked by a legal hold or a legal retention period (the refusal is recorded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureOrder:
    """What to erase and why. Select by ``request_ids``, by ``tenant`` and ``principal``, or by
    ``subject`` (a data subject's principal id, in every tenant)."""

    by: str  # who orders the erasure
    reason: str
    legal_basis: str  # e.g. "GDPR Art. 17(1)(a)"
    request_ids: Sequence[str] = ()
    tenant: str | None = None
    principal: str | None = None
    subject: str | None = None


@dataclass(slots=True)
class ErasureResult:
    origin: str  # the log holding the erasure record
    seq: int  # the erasure record's index there
    erased: list[tuple[str, str]] = field(default_factory=list)  # (log, request id)
    checkpoint: str = ""  # the signed checkpoint note covering the record


# (origin, log_id, request_id, parsed request.start header)
_Target = tuple[str, int, str, dict[str, Any]]

_SELECT = "select by request ids, or by tenant and principal, or by subject"


def _targets(conn: Connection, order: ErasureOrder) -> list[_Target]:
    """Every request with a data key that the order selects."""
    if order.request_ids:
        if order.tenant or order.principal or order.subject:
            raise ConfigurationError(_SELECT)
        rows = keyed_requests(conn, request_ids=list(order.request_ids))
        missing = sorted(set(order.request_ids) - {r[2] for r in rows})
        if missing:
            raise NotFoundError(
                f"no data key for request(s) {', '.join(missing)}: unknown, already erased, or "
                f"recorded without encryption (unsealed payloads cannot be crypto-shredded)"
            )
        return [(o, i, r, parse_header(body)) for o, i, r, body in rows]
    if order.subject is not None:
        if order.tenant or order.principal:
            raise ConfigurationError("--subject selects in every tenant: give no tenant/principal")
        who, tenant = order.subject, None
    elif order.tenant is not None and order.principal is not None:
        who, tenant = order.principal, order.tenant
    else:
        raise ConfigurationError(_SELECT)
    rows = keyed_requests(conn, tenant=tenant)
    chosen = [
        (o, i, r, h) for o, i, r, body in rows if (h := parse_header(body)).get("principal") == who
    ]
    if not chosen:
        raise NotFoundError(f"no request of principal {who!r} has a data key left")
    return chosen


def _blockers(
    conn: Connection, targets: list[_Target], holds: list[Hold], now_ns: int
) -> list[dict[str, str]]:
    """What forbids erasing each target now: a hold in force, or a legal retention period."""
    found = []
    for origin, _, request_id, start in targets:
        for hold in holds:
            if hold.scope.covers(start):
                found.append(
                    {"log": origin, "request_id": request_id, "because": f"hold {hold.hold_id}"}
                )
        retention = start.get("retention")
        if isinstance(retention, dict) and retention["legal"] and int(retention["until"]) > now_ns:
            because = f"retention {retention['class']} until {retention['until']}"
            found.append({"log": origin, "request_id": request_id, "because": because})
    return found


def _shred(
    conn: Connection,
    targets: list[_Target],
    *,
    signer: Signer,
    origin: str,
    fields: dict[str, Any],
    now_ns: int,
) -> ErasureResult:
    fields = {**fields, "erased": [{"log": o, "request_id": r} for o, _, r, _ in targets]}
    record, note = append_admin_record(
        conn, signer=signer, origin=origin, kind=RecordKind.ERASURE, fields=fields, now_ns=now_ns
    )
    by_log: dict[int, list[str]] = {}
    for _, log_id, request_id, _ in targets:
        by_log.setdefault(log_id, []).append(request_id)
    for log_id, request_ids in by_log.items():
        delete_data_keys(conn, log_id, request_ids)
    return ErasureResult(origin, record.seq, [(o, r) for o, _, r, _ in targets], note)


def _purge(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        purge_freed_keys(conn)


def erase(
    engine: Engine,
    order: ErasureOrder,
    *,
    signer: Signer,
    origin: str | None = None,
    now_ns: int | None = None,
) -> ErasureResult:
    """Record the erasure in ``origin`` (default: the signer's name) and shred the data keys.

    Raises NotFoundError when nothing selected has a data key, ConfigurationError for a bad
    order, and ErasureRefusedError (after recording the refusal) when a hold or a legal retention
    period covers a selected request. Holds are read only from records proven under the
    signer's key (:func:`~auditlog.protect.holds.list_holds`): when the administrative log
    cannot be proven, UnprovenAdminLogError, and nothing is recorded or shredded.
    """
    for name, value in (
        ("by", order.by),
        ("reason", order.reason),
        ("legal basis", order.legal_basis),
    ):
        if not value.strip():
            raise ConfigurationError(f"an erasure needs a non-empty {name}")
    origin = origin or signer.name
    now = time.time_ns() if now_ns is None else now_ns
    why = {"principal": order.by, "reason": order.reason, "legal_basis": order.legal_basis}
    with engine.begin() as conn:
        # Holds first (C15): an administrative log that cannot be proven refuses the erasure.
        holds = list_holds(conn, [signer.verifier], own=origin)
        targets = _targets(conn, order)
        blocked = _blockers(conn, targets, holds, now)
        if blocked:
            record, _ = append_admin_record(
                conn,
                signer=signer,
                origin=origin,
                kind=RecordKind.ADMIN,
                fields={"action": "erase.refused", **why, "refused": blocked},
                now_ns=now,
            )
            refusal = f"record {record.seq} of {origin}"
        else:
            result = _shred(conn, targets, signer=signer, origin=origin, fields=why, now_ns=now)
    if blocked:
        reasons = "; ".join(f"{b['request_id']}: {b['because']}" for b in blocked)
        raise ErasureRefusedError(f"erasure refused ({reasons}); the refusal is {refusal}")
    _purge(engine)
    return result


def shred_due(
    engine: Engine, *, signer: Signer, origin: str | None, by: str, now_ns: int
) -> ErasureResult | None:
    """Retention (C14): shred every request whose ``retention.until`` <= ``now_ns`` and that no
    hold covers, under one erasure record; None when nothing is due."""
    origin = origin or signer.name
    with engine.begin() as conn:
        holds = list_holds(conn, [signer.verifier], own=origin)
        due = []
        for o, i, r, body in keyed_requests(conn):
            start = parse_header(body)
            retention = start.get("retention")
            if not isinstance(retention, dict) or int(retention["until"]) > now_ns:
                continue
            if any(hold.scope.covers(start) for hold in holds):
                continue
            due.append((o, i, r, start))
        if not due:
            return None
        classes = sorted({str(t[3]["retention"]["class"]) for t in due})
        fields = {
            "principal": by,
            "reason": "retention period expired",
            "legal_basis": "retention class " + ", ".join(classes) + " expired",
        }
        result = _shred(conn, due, signer=signer, origin=origin, fields=fields, now_ns=now_ns)
    _purge(engine)
    return result
