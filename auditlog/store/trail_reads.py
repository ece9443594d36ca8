"""The one read path of trails: every reader (API, export, HTML, trails, ``verify --request``)
reads a request's records here, bounded to what a signed checkpoint covers.

Rules (docs/INTERNALS.md, "The read path"):

- A log's readable range is ``[0, size)`` of its newest checkpoint whose note opens under the
  reader's verifier keys and whose stored ``size``/``root`` columns equal the signed ones
  (:func:`newest_signed_checkpoint`). Nothing outside it is ever returned: a row at a negative
  ``seq``, at ``2^63-1``, or merely not yet checkpointed does not exist for a reader. Records after
  the newest checkpoint are not shown at all (not even as a pending tail): a trail whose end is
  not yet covered reads as an open, pending trail.
- A request id resolves to one trail in one log. When two logs hold a covered ``request.start``
  of it, :func:`find_trail` raises :class:`~auditlog.errors.ConflictError` instead of choosing.
- Tenant scope (C19): a request of another tenant reads exactly like one that does not exist.

Which checkpoints count as signed is :mod:`auditlog.store.signed_checkpoints`; the writer's
checks on a log (:func:`request_in_log`, :func:`log_holds_other_kinds`) live in
:mod:`auditlog.store.log_registry`. Both are re-exported here.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from auditlog.errors import ConflictError, FormatError, NoCheckpointError, NotFoundError
from auditlog.ledger import RecordKind, Verifier, parse_header
from auditlog.store.checkpoints import StoredCheckpoint, iter_checkpoints
from auditlog.store.ledger_reads import _STORED_COLUMNS, _WITH_PAYLOADS, StoredRecord, _stored
from auditlog.store.log_registry import log_holds_other_kinds, request_in_log
from auditlog.store.schema import logs, records
from auditlog.store.signed_checkpoints import (
    MAX_CHECKPOINTS_TRIED,
    LogBound,
    earliest_signed_checkpoint,
    first_signed,
    log_bounds,
    newest_signed_checkpoint,
    reader_verifiers,
    signing_keys_of,
)

__all__ = [
    "MAX_CHECKPOINTS_TRIED",
    "LogBound",
    "StoredTrail",
    "covering_checkpoint",
    "earliest_signed_checkpoint",
    "find_trail",
    "log_bounds",
    "log_holds_other_kinds",
    "newest_signed_checkpoint",
    "read_trail_records",
    "request_in_log",
    "signing_keys_of",
]

_NOT_FOUND = "request not found"


@dataclass(frozen=True, slots=True)
class StoredTrail:
    """The covered records of one request's chain (by ``req_seq``), not yet verified."""

    log_id: int
    origin: str
    request_id: str
    records: list[StoredRecord]
    bound: LogBound

    @property
    def end(self) -> int:
        """One past the largest ``seq`` of the trail (the smallest tree size covering it)."""
        return max(r.seq for r in self.records) + 1


def read_trail_records(
    conn: Connection, log_id: int, request_id: str, *, size: int
) -> list[StoredRecord]:
    """THE bounded read: the records of ``request_id`` with ``0 <= seq < size``, by ``req_seq``."""
    rows = conn.execute(
        select(*_STORED_COLUMNS)
        .select_from(_WITH_PAYLOADS)
        .where(records.c.log_id == log_id, records.c.request_id == request_id)
        .where(records.c.seq >= 0, records.c.seq < size)
        .order_by(records.c.req_seq, records.c.seq)
    )
    return [_stored(tuple(row)) for row in rows]


def _claims(
    conn: Connection, request_id: str, tenants: Collection[str] | None, origin: str | None
) -> list[tuple[int, str, int]]:
    """(log id, origin, seq) of every ``request.start`` of ``request_id`` at ``seq >= 0``."""
    stmt = (
        select(records.c.log_id, logs.c.origin, records.c.seq)
        .select_from(logs)
        .join(records, logs.c.id == records.c.log_id)
        .where(
            records.c.request_id == request_id,
            records.c.req_seq == 0,
            records.c.kind == RecordKind.REQUEST_START.value,
            records.c.seq >= 0,
        )
        .order_by(records.c.log_id, records.c.seq)
    )
    if tenants is not None:
        stmt = stmt.where(records.c.tenant.in_(sorted(tenants)))
    if origin is not None:
        stmt = stmt.where(logs.c.origin == origin)
    return [(int(log_id), str(o), int(seq)) for log_id, o, seq in conn.execute(stmt)]


def _header_tenant(body: bytes) -> str | None:
    try:
        tenant = parse_header(body).get("tenant")
    except FormatError:
        return None
    return tenant if isinstance(tenant, str) else None


def find_trail(
    conn: Connection,
    request_id: str,
    *,
    tenants: Collection[str] | None,
    trusted: Sequence[Verifier] = (),
    origin: str | None = None,
) -> StoredTrail:
    """The covered trail of ``request_id`` (in log ``origin`` when given), if its tenant is one
    of ``tenants`` (None: every tenant).

    Raises NotFoundError (the same message for a request that does not exist and one of another
    tenant, C19), NoCheckpointError when the request exists but no checkpoint signed by a
    reader's key covers its start yet, and ConflictError when two logs claim the request id.
    """
    claims = _claims(conn, request_id, tenants, origin)
    if not claims:
        raise NotFoundError(_NOT_FOUND)
    covered: list[StoredTrail] = []
    for log_id, log_origin in dict.fromkeys((log_id, o) for log_id, o, _ in claims):
        bound = newest_signed_checkpoint(conn, log_id, log_origin, trusted)
        if bound is None:
            continue
        chain = read_trail_records(conn, log_id, request_id, size=bound.checkpoint.size)
        if chain and chain[0].req_seq == 0:
            covered.append(StoredTrail(log_id, log_origin, request_id, chain, bound))
    if len(covered) > 1:
        origins = ", ".join(repr(t.origin) for t in covered)
        raise ConflictError(
            f"request id {request_id!r} is claimed by {len(covered)} logs ({origins}); "
            "refusing to choose one (run auditlog verify on this database)"
        )
    if not covered:
        raise NoCheckpointError(
            f"request {request_id!r} is not yet covered by a checkpoint signed by a "
            "trusted key; retry after the next checkpoint"
        )
    trail = covered[0]
    # The tenant is checked twice: on the indexed column (to find the chain) and on the hashed
    # header of its request.start. A chain that mixes tenants is shown to nobody but an
    # unrestricted caller: never another tenant's records (C19).
    if tenants is not None and (
        _header_tenant(trail.records[0].body) not in tenants
        or any(r.tenant not in tenants for r in trail.records)
    ):
        raise NotFoundError(_NOT_FOUND)
    return trail


def covering_checkpoint(
    conn: Connection,
    trail: StoredTrail,
    trusted: Sequence[Verifier] = (),
    *,
    at_size: int | None = None,
) -> StoredCheckpoint:
    """The earliest signed checkpoint covering the whole trail (or the one of size ``at_size``),
    no larger than the trail's bound. Raises NoCheckpointError when there is none."""
    verifiers = reader_verifiers(conn, trail.log_id, trusted)
    candidates = iter_checkpoints(
        conn,
        trail.log_id,
        newest_first=False,
        min_size=trail.end if at_size is None else at_size,
        max_size=trail.bound.checkpoint.size if at_size is None else at_size,
    )
    sized = (c for c in candidates if at_size is None or c.size == at_size)
    found = first_signed(sized, verifiers, trail.origin)
    if found is not None:
        return found
    wanted = f"of size {at_size} covering" if at_size is not None else "covering"
    raise NoCheckpointError(
        f"no signed checkpoint {wanted} the trail (it needs size >= {trail.end})"
    )
