"""Reading a request's trail from the store and exporting it as an evidence bundle (C20).

Determinism: a bundle is pinned to the *earliest* signed checkpoint whose tree covers every
record of the trail (unless the caller names a checkpoint size). Checkpoints are append-only and
never re-signed, so exporting the same request again, today or in ten years, gives the same
bytes, as long as no witness cosignature of that checkpoint arrived in between (the note
carries the cosignatures stored for it when exported, docs/FORMAT.md). The embedded keys are
exactly the known verifier keys whose signature on that checkpoint verifies, sorted.

Every function runs inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Connection, select

from auditlog.errors import FormatError, NotFoundError, VerificationError
from auditlog.ledger import RecordKind, Verifier, open_checkpoint, parse_header
from auditlog.ledger.cosignature import cosigned_note
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.cosignatures import list_cosignatures
from auditlog.store.ledger_store import (
    StoredCheckpoint,
    StoredNodeSource,
    StoredRecord,
    read_request,
)
from auditlog.store.ledger_store import list_keys as list_signing_keys
from auditlog.store.schema import checkpoints, logs, records

from .format import Bundle, BundleRecord, encode_bundle

__all__ = [
    "NoCheckpointError",
    "StoredTrail",
    "build_bundle",
    "covering_checkpoint",
    "export_bundle",
    "find_trail",
    "signing_keys_of",
]


class NoCheckpointError(NotFoundError):
    """No signed checkpoint covers the whole trail yet (retry after the next checkpoint)."""


@dataclass(frozen=True, slots=True)
class StoredTrail:
    """The stored records of one request's chain (by ``req_seq``), not yet verified."""

    log_id: int
    origin: str
    request_id: str
    records: list[StoredRecord]

    @property
    def end(self) -> int:
        """One past the largest ``seq`` of the trail (the smallest tree size covering it)."""
        return max(r.seq for r in self.records) + 1


def _header_tenant(body: bytes) -> str | None:
    try:
        tenant = parse_header(body).get("tenant")
    except FormatError:
        return None
    return tenant if isinstance(tenant, str) else None


def find_trail(
    conn: Connection, request_id: str, *, tenants: Collection[str] | None
) -> StoredTrail:
    """The trail of ``request_id``, if its tenant is one of ``tenants`` (None: every tenant).

    The tenant is checked twice: on the indexed column (to find the chain) and on the hashed
    header of its ``request.start`` record. Raises NotFoundError, with the same message, when the
    request does not exist and when it belongs to another tenant (C19).
    """
    # Driven by the (few) logs, so that each probe is a (log_id, request_id, req_seq) index hit.
    stmt = (
        select(records.c.log_id, records.c.tenant, logs.c.origin)
        .select_from(logs)
        .join(records, logs.c.id == records.c.log_id)
        .where(
            records.c.request_id == request_id,
            records.c.req_seq == 0,
            records.c.kind == RecordKind.REQUEST_START.value,
        )
        .order_by(records.c.log_id)
    )
    if tenants is not None:
        stmt = stmt.where(records.c.tenant.in_(sorted(tenants)))
    not_found = NotFoundError("request not found")
    row = conn.execute(stmt.limit(1)).first()
    if row is None:
        raise not_found
    log_id, _tenant, origin = tuple(row)
    chain = read_request(conn, log_id, request_id)
    if not chain:
        raise not_found
    if tenants is not None and _header_tenant(chain[0].body) not in tenants:
        raise not_found
    # A chain that mixes tenants (a reused request id in a damaged log) is shown to nobody but an
    # unrestricted caller: never another tenant's records (C19).
    if tenants is not None and any(record.tenant not in tenants for record in chain):
        raise not_found
    return StoredTrail(log_id=log_id, origin=origin, request_id=request_id, records=chain)


def covering_checkpoint(
    conn: Connection, log_id: int, min_size: int, *, at_size: int | None = None
) -> StoredCheckpoint:
    """The earliest checkpoint of size >= ``min_size`` (or exactly ``at_size``).

    Raises NoCheckpointError when there is none.
    """
    stmt = select(checkpoints.c.size, checkpoints.c.root, checkpoints.c.note, checkpoints.c.ts)
    stmt = stmt.where(checkpoints.c.log_id == log_id, checkpoints.c.size >= min_size)
    if at_size is not None:
        stmt = stmt.where(checkpoints.c.size == at_size)
    row = conn.execute(stmt.order_by(checkpoints.c.size).limit(1)).first()
    if row is None:
        wanted = f"of size {at_size} covering" if at_size is not None else "covering"
        raise NoCheckpointError(
            f"no signed checkpoint {wanted} the trail (it needs size >= {min_size})"
        )
    size, root, note, ts = tuple(row)
    return StoredCheckpoint(size=size, root=bytes(root), note=note, ts=ts)


def signing_keys_of(
    conn: Connection, log_id: int, note: str, extra_keys: Sequence[str] = ()
) -> list[str]:
    """The known verifier keys (stored for the log, plus ``extra_keys``) that signed ``note``."""
    candidates = {k.verifier_key for k in list_signing_keys(conn, log_id)} | set(extra_keys)
    signed = []
    for key in sorted(candidates):
        try:
            open_checkpoint(note, [Verifier.from_key_string(key)])
        except (FormatError, VerificationError):
            continue
        signed.append(key)
    return signed


def build_bundle(
    conn: Connection,
    trail: StoredTrail,
    checkpoint: StoredCheckpoint,
    keys: Sequence[str],
) -> Bundle:
    """The bundle of ``trail`` against ``checkpoint``: proofs read from the stored Merkle nodes."""
    source = StoredNodeSource(conn, trail.log_id)
    # One batch: the trail's records are neighbours, their proofs share most hashes.
    proofs = inclusion_proofs([r.seq for r in trail.records], checkpoint.size, source)
    return Bundle(
        log=trail.origin,
        request_id=trail.request_id,
        checkpoint=checkpoint.note,
        keys=tuple(sorted(keys)),
        records=tuple(
            BundleRecord(
                seq=r.seq,
                body=bytes(r.body),
                payload=None if r.payload is None else bytes(r.payload),
                proof=tuple(proof),
            )
            for r, proof in zip(trail.records, proofs, strict=True)
        ),
    )


def export_bundle(
    conn: Connection,
    request_id: str,
    *,
    tenants: Collection[str] | None = None,
    at_size: int | None = None,
    extra_keys: Sequence[str] = (),
) -> bytes:
    """Canonical bundle bytes of ``request_id`` (module docstring: same request, same bytes).

    Raises NotFoundError for an unknown or out-of-scope request, NoCheckpointError when no
    signed checkpoint covers the trail yet.
    """
    trail = find_trail(conn, request_id, tenants=tenants)
    checkpoint = covering_checkpoint(conn, trail.log_id, trail.end, at_size=at_size)
    keys = signing_keys_of(conn, trail.log_id, checkpoint.note, extra_keys)
    # The witnesses' cosignatures travel on the checkpoint note (C2SP: one line per witness).
    cosigs = list_cosignatures(
        conn, trail.log_id, min_size=checkpoint.size, max_size=checkpoint.size
    )
    checkpoint = replace(
        checkpoint, note=cosigned_note(checkpoint.note, cosigs.get(checkpoint.size, []))
    )
    return encode_bundle(build_bundle(conn, trail, checkpoint, keys))
