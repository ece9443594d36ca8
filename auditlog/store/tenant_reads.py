"""Proven tenants of requests: whose request a hold or an erasure names (C15, C16, C19).

Readers narrow holds and erasures to an auditor's tenants by the tenant of each request they
name. The ``records.tenant`` column is an unsigned copy a database administrator can edit, and a
writer can INSERT a second ``request.start`` of any request id (past the log's checkpoint, or in
a log of its own): neither may move a hold or an erasure into another tenant's view, or out of
its own. :func:`proven_tenants` therefore reads each request's ``request.start`` through the read
path's bound (its log's newest checkpoint signed by a reader's key, ``[0, size)``), checks its
inclusion under that checkpoint's signed root, and takes the tenant from the signed header.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from auditlog.errors import FormatError, StoreError, VerificationError
from auditlog.ledger import (
    RecordKind,
    Verifier,
    inclusion_proof,
    leaf_hash,
    parse_header,
    verify_inclusion,
)
from auditlog.store.ledger_reads import StoredNodeSource, StoredRecord
from auditlog.store.trail_reads import (
    LogBound,
    _claims,
    newest_signed_checkpoint,
    read_trail_records,
)

__all__ = ["proven_tenants"]


def _signed_tenant(conn: Connection, bound: LogBound, start: StoredRecord) -> str | None:
    """The tenant in the header of ``start``, if these bytes are the record that ``bound``'s
    signed root includes at ``start.seq``."""
    size, root = bound.checkpoint.size, bound.checkpoint.root
    try:
        proof = inclusion_proof(start.seq, size, StoredNodeSource(conn, bound.log_id))
        verify_inclusion(leaf_hash(start.body), start.seq, size, proof, root)
        header = parse_header(start.body)
    except (FormatError, StoreError, VerificationError):
        return None  # not the signed record (auditlog verify reports it)
    if header["kind"] != RecordKind.REQUEST_START.value or header.get("request_id") != (
        start.request_id
    ):
        return None
    tenant = header.get("tenant")
    return tenant if isinstance(tenant, str) else None


def proven_tenants(
    conn: Connection, request_ids: Iterable[str], trusted: Sequence[Verifier]
) -> dict[tuple[str, str], str]:
    """The tenant of each named request as its covered, signed ``request.start`` says:
    ``{(origin, request_id): tenant}`` over every log whose newest checkpoint opens under
    ``trusted`` (with none given, under the keys stored for the log). A request with no covered
    start, with two, whose start does not verify under the checkpoint, or without a tenant is
    absent. For the requests named by holds and erasures, which are few."""
    found: dict[tuple[str, str], str] = {}
    for request_id in sorted(set(request_ids)):
        claims = _claims(conn, request_id, None, None)
        for log_id, origin in dict.fromkeys((log_id, origin) for log_id, origin, _ in claims):
            bound = newest_signed_checkpoint(conn, log_id, origin, trusted)
            if bound is None:
                continue
            chain = read_trail_records(conn, log_id, request_id, size=bound.checkpoint.size)
            starts = [r for r in chain if r.req_seq == 0]
            if len(starts) != 1:
                continue
            tenant = _signed_tenant(conn, bound, starts[0])
            if tenant is not None:
                found[(origin, request_id)] = tenant
    return found
