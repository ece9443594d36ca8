"""Reading a request's trail from the store and exporting it as an evidence bundle (C20).

Determinism: a bundle is pinned to the *earliest* signed checkpoint whose tree covers every
record of the trail (unless the caller names a checkpoint size). Checkpoints are append-only and
never re-signed, so exporting the same request again, today or in ten years, gives the same
bytes, as long as no witness cosignature of that checkpoint arrived in between (the note
carries the cosignatures stored for it when exported, docs/FORMAT.md). The embedded keys are
exactly the known verifier keys whose signature on that checkpoint verifies, sorted.

Reads go through ``auditlog.store.trail_reads`` (the one bounded read path); every function runs
inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from sqlalchemy import Connection

from auditlog.errors import NoCheckpointError
from auditlog.ledger import Verifier
from auditlog.ledger.cosignature import cosigned_note
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.checkpoints import StoredCheckpoint
from auditlog.store.cosignatures import list_cosignatures
from auditlog.store.ledger_store import StoredNodeSource
from auditlog.store.trail_reads import (
    StoredTrail,
    covering_checkpoint,
    find_trail,
    signing_keys_of,
)

from .format import Bundle, BundleRecord, encode_bundle

__all__ = ["NoCheckpointError", "build_bundle", "export_bundle"]


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
    trusted: Sequence[Verifier] = (),
    at_size: int | None = None,
    extra_keys: Sequence[str] = (),
) -> bytes:
    """Canonical bundle bytes of ``request_id`` (module docstring: same request, same bytes).

    Reads through the store's one bounded read path (``auditlog.store.trail_reads``): only
    records covered by a checkpoint signed by ``trusted`` (when given; else by a key stored for
    the log) are exported. Raises NotFoundError for an unknown or out-of-scope request,
    NoCheckpointError when no such checkpoint covers the trail yet, ConflictError when two logs
    claim the request id.
    """
    trail = find_trail(conn, request_id, tenants=tenants, trusted=trusted)
    checkpoint = covering_checkpoint(conn, trail, trusted, at_size=at_size)
    keys = signing_keys_of(conn, trail.log_id, checkpoint.note, extra_keys)
    # The witnesses' cosignatures travel on the checkpoint note (C2SP: one line per witness).
    cosigs = list_cosignatures(
        conn, trail.log_id, min_size=checkpoint.size, max_size=checkpoint.size
    )
    checkpoint = replace(
        checkpoint, note=cosigned_note(checkpoint.note, cosigs.get(checkpoint.size, []))
    )
    return encode_bundle(build_bundle(conn, trail, checkpoint, keys))
