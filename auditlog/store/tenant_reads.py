"""Proven tenants of requests: whose request a hold or an erasure names (C15, C16, C19).

Readers narrow holds and erasures to an auditor's tenants by the tenant of each request they
name. The ``records.tenant`` column is an unsigned copy a database administrator can edit, and a
writer can INSERT a second ``request.start`` of any request id (past the log's checkpoint, or in
a log of its own): neither may move a hold or an erasure into another tenant's view, or out of
its own. :func:`proven_tenants` therefore reads each request's ``request.start`` through the read
path's bound (its log's newest checkpoint signed by a reader's key, ``[0, size)``), checks its
inclusion under that checkpoint's signed root (one batch of proofs per log), and takes the
tenant from the signed header.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from auditlog.errors import FormatError, StoreError, VerificationError
from auditlog.ledger import RecordKind, Verifier, leaf_hash, parse_header, verify_inclusion
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.ledger_reads import StoredNodeSource, StoredRecord, read_record
from auditlog.store.signed_checkpoints import LogBound, newest_signed_checkpoint
from auditlog.store.trail_reads import _claims

__all__ = ["proven_tenants"]


def _tenant_of(start: StoredRecord) -> str | None:
    try:
        header = parse_header(start.body)
    except FormatError:
        return None
    if header["kind"] != RecordKind.REQUEST_START.value:
        return None
    if header.get("request_id") != start.request_id:
        return None
    tenant = header.get("tenant")
    return tenant if isinstance(tenant, str) else None


def _signed_tenants(
    conn: Connection, bound: LogBound, starts: list[StoredRecord]
) -> dict[tuple[str, str], str]:
    """The tenants in the headers of ``starts`` that ``bound``'s signed root includes as
    stored (a start that is not the signed record proves no tenant)."""
    size, root = bound.checkpoint.size, bound.checkpoint.root
    try:
        proofs = inclusion_proofs(
            [r.seq for r in starts], size, StoredNodeSource(conn, bound.log_id)
        )
    except StoreError:
        return {}  # nodes missing: nothing proven (auditlog verify reports it)
    found = {}
    for start, proof in zip(starts, proofs, strict=True):
        try:
            verify_inclusion(leaf_hash(start.body), start.seq, size, proof, root)
        except (FormatError, VerificationError):
            continue
        tenant = _tenant_of(start)
        if tenant is not None and start.request_id is not None:
            found[(bound.origin, start.request_id)] = tenant
    return found


def proven_tenants(
    conn: Connection, request_ids: Iterable[str], trusted: Sequence[Verifier]
) -> dict[tuple[str, str], str]:
    """The tenant of each named request as its covered, signed ``request.start`` says:
    ``{(origin, request_id): tenant}`` over every log whose newest checkpoint opens under
    ``trusted`` (with none given, under the keys stored for the log). A request with no covered
    start, with two in one log, whose start does not verify under the checkpoint, or without a
    tenant is absent. For the requests named by holds and erasures."""
    bounds: dict[int, LogBound | None] = {}
    starts: dict[int, list[StoredRecord]] = {}
    for request_id in sorted(set(request_ids)):
        covered: dict[int, list[int]] = {}
        for log_id, origin, seq in _claims(conn, request_id, None, None):
            if log_id not in bounds:
                bounds[log_id] = newest_signed_checkpoint(conn, log_id, origin, trusted)
            bound = bounds[log_id]
            if bound is not None and seq < bound.checkpoint.size:
                covered.setdefault(log_id, []).append(seq)
        for log_id, seqs in covered.items():
            if len(seqs) == 1:  # two covered starts of one id: verify fails it, nobody's
                starts.setdefault(log_id, []).append(read_record(conn, log_id, seqs[0]))
    found: dict[tuple[str, str], str] = {}
    for log_id, rows in starts.items():
        bound = bounds[log_id]
        if bound is not None:
            found.update(_signed_tenants(conn, bound, rows))
    return found
