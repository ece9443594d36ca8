"""Crypto-shredding (C16): destroy requests' data keys under a signed ``erasure`` record.

An erasure appends one ``erasure`` record (who, why, legal basis, which requests) to an
administrative log, signs a checkpoint over it, and deletes the requests' wrapped data keys, in
one transaction: either the record and the deletion both happen or neither does. The sealed
payloads stay in the append-only ledger and keep verifying (their digests are over ciphertext);
without the data key nobody, the holder of the tenant's KEK included, can open them again.

The administrative log has one writer like every log: give it its own origin (the signing key's
name), never the origin a running recorder writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from auditlog.errors import ConfigurationError, NotFoundError
from auditlog.ledger import RecordKind, Signer, parse_header
from auditlog.recorder.sequencer import LogSequencer
from auditlog.store import (
    StoredCheckpoint,
    append_batch,
    delete_data_keys,
    keyed_requests,
    purge_freed_keys,
    register_key,
)

__all__ = ["ErasureOrder", "ErasureResult", "erase"]


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


def _targets(engine: Engine, order: ErasureOrder) -> list[tuple[str, int, str]]:
    """(origin, log_id, request_id) of every request with a data key that the order selects."""
    if order.request_ids:
        if order.tenant or order.principal or order.subject:
            raise ConfigurationError("select by request ids, or by tenant and principal, or by subject")
        with engine.connect() as conn:
            rows = keyed_requests(conn, request_ids=list(order.request_ids))
        missing = sorted(set(order.request_ids) - {r[2] for r in rows})
        if missing:
            raise NotFoundError(
                f"no data key for request(s) {', '.join(missing)}: unknown, already erased, or "
                f"recorded without encryption (unsealed payloads cannot be crypto-shredded)"
            )
        return [(o, i, r) for o, i, r, _ in rows]
    if order.subject is not None:
        if order.tenant or order.principal:
            raise ConfigurationError("--subject selects in every tenant: give no tenant/principal")
        who, tenant = order.subject, None
    elif order.tenant is not None and order.principal is not None:
        who, tenant = order.principal, order.tenant
    else:
        raise ConfigurationError("select by request ids, or by tenant and principal, or by subject")
    with engine.connect() as conn:
        rows = keyed_requests(conn, tenant=tenant)
    chosen = [(o, i, r) for o, i, r, body in rows if parse_header(body).get("principal") == who]
    if not chosen:
        raise NotFoundError(f"no request of principal {who!r} has a data key left")
    return chosen


def erase(
    engine: Engine, order: ErasureOrder, *, signer: Signer, origin: str | None = None,
    now_ns: int | None = None,
) -> ErasureResult:
    """Record the erasure in ``origin`` (default: the signer's name) and shred the data keys.

    Raises NotFoundError when nothing selected has a data key, ConfigurationError for a bad order.
    """
    for name, value in (("by", order.by), ("reason", order.reason), ("legal basis", order.legal_basis)):
        if not value.strip():
            raise ConfigurationError(f"an erasure needs a non-empty {name}")
    origin = origin or signer.name
    targets = _targets(engine, order)
    now = time.time_ns() if now_ns is None else now_ns
    with engine.begin() as conn:
        seq = LogSequencer.resume(conn, origin)
        register_key(conn, seq.log_id, signer.verifier_key, created=now)
        record = seq.append(
            RecordKind.ERASURE,
            ts=now,
            fields={
                "principal": order.by,
                "reason": order.reason,
                "legal_basis": order.legal_basis,
                "erased": [{"log": o, "request_id": r} for o, _, r in targets],
            },
        )
        cp, note = seq.checkpoint([signer])
        batch = seq.drain()
        stored_cp = StoredCheckpoint(size=cp.size, root=cp.root, note=note, ts=now)
        append_batch(conn, seq.log_id, batch.records, batch.nodes, checkpoint=stored_cp)
        by_log: dict[int, list[str]] = {}
        for _, log_id, request_id in targets:
            by_log.setdefault(log_id, []).append(request_id)
        for log_id, request_ids in by_log.items():
            delete_data_keys(conn, log_id, request_ids)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        purge_freed_keys(conn)
    return ErasureResult(origin, record.seq, [(o, r) for o, _, r in targets], note)
