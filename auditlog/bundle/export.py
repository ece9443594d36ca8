"""Reading a request's trail from the store and exporting it as an evidence bundle (C20).

Determinism: a bundle is pinned to the *earliest* signed checkpoint whose tree covers every
record of the trail (unless the caller names a checkpoint size). Checkpoints are append-only and
never re-signed, so exporting the same request again, today or in ten years, gives the same
bytes, as long as no witness cosignature of that checkpoint arrived in between (the note
carries the cosignatures stored for it when exported, docs/FORMAT.md). The embedded keys are
exactly the known verifier keys whose signature on that checkpoint verifies, sorted.

Erasure (C16): when an ``erasure`` record names the request and its data key is gone, the
bundle carries that record (member ``erasure``) with the earliest signed checkpoint of the
record's own log that covers it and its inclusion proof, and no payloads (the content is
destroyed; the headers' digests stay). A bundle exported before the erasure is unchanged and
still verifies; one exported after it verifies and names the erasure.

Reads go through ``auditlog.store.trail_reads`` (the one bounded read path); every function runs
inside the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from sqlalchemy import Connection

from auditlog.errors import FormatError, NoCheckpointError
from auditlog.ledger import Verifier, parse_header
from auditlog.ledger.cosignature import cosigned_note
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.checkpoints import StoredCheckpoint
from auditlog.store.cosignatures import list_cosignatures
from auditlog.store.data_keys import erasure_bodies, read_data_key
from auditlog.store.ledger_store import StoredNodeSource, get_log_id
from auditlog.store.timestamps import get_timestamp
from auditlog.store.trail_reads import (
    StoredTrail,
    covering_checkpoint,
    earliest_signed_checkpoint,
    find_trail,
    signing_keys_of,
)

from .format import Bundle, BundleErasure, BundleRecord, encode_bundle

__all__ = [
    "NoCheckpointError",
    "build_bundle",
    "export_bundle",
    "find_erasure",
    "with_erasure",
    "with_outside_anchors",
]


def build_bundle(
    conn: Connection,
    trail: StoredTrail,
    checkpoint: StoredCheckpoint,
    keys: Sequence[str],
    timestamp: bytes | None = None,
) -> Bundle:
    """The bundle of ``trail`` against ``checkpoint``: proofs read from the stored Merkle nodes
    (``timestamp``: the checkpoint's RFC 3161 token, see :func:`with_outside_anchors`)."""
    source = StoredNodeSource(conn, trail.log_id)
    # One batch: the trail's records are neighbours, their proofs share most hashes.
    proofs = inclusion_proofs([r.seq for r in trail.records], checkpoint.size, source)
    return Bundle(
        log=trail.origin,
        request_id=trail.request_id,
        checkpoint=checkpoint.note,
        keys=tuple(sorted(keys)),
        timestamp=timestamp,
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


def _cosigned(conn: Connection, log_id: int, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
    """``checkpoint`` with the witnesses' cosignatures on its note (C2SP: one line each)."""
    cosigs = list_cosignatures(conn, log_id, min_size=checkpoint.size, max_size=checkpoint.size)
    return replace(checkpoint, note=cosigned_note(checkpoint.note, cosigs.get(checkpoint.size, [])))


def find_erasure(
    conn: Connection, trail: StoredTrail, trusted: Sequence[Verifier], extra_keys: Sequence[str]
) -> BundleErasure | None:
    """The evidence of the erasure of ``trail``'s request: only for a sealed request whose data
    key is gone, the first ``erasure`` record naming it that a signed checkpoint of its log
    covers (signed by ``trusted`` when given). None when the request was not erased."""
    start = parse_header(bytes(trail.records[0].body))
    if "enc" not in start or read_data_key(conn, trail.log_id, trail.request_id) is not None:
        return None
    named = {"log": trail.origin, "request_id": trail.request_id}
    for origin, seq, body in erasure_bodies(conn):
        try:
            erased = parse_header(body).get("erased")
        except FormatError:
            continue  # auditlog verify reports it; it proves nothing here
        if seq < 0 or not isinstance(erased, list) or named not in erased:
            continue
        log_id = get_log_id(conn, origin)
        found = earliest_signed_checkpoint(conn, log_id, origin, trusted, min_size=seq + 1)
        if found is None:
            continue
        checkpoint = _cosigned(conn, log_id, found)
        [proof] = inclusion_proofs([seq], checkpoint.size, StoredNodeSource(conn, log_id))
        return BundleErasure(
            log=origin,
            checkpoint=checkpoint.note,
            keys=tuple(sorted(signing_keys_of(conn, log_id, found.note, extra_keys))),
            seq=seq,
            body=body,
            proof=tuple(proof),
        )
    return None


def with_erasure(
    conn: Connection,
    bundle: Bundle,
    trail: StoredTrail,
    trusted: Sequence[Verifier] = (),
    extra_keys: Sequence[str] = (),
) -> Bundle:
    """``bundle`` as exported after an erasure of its request (module docstring): the erasure
    record added, the payloads left out. Unchanged when the request was not erased."""
    erasure = find_erasure(conn, trail, trusted, extra_keys)
    if erasure is None:
        return bundle
    records = tuple(replace(r, payload=None) for r in bundle.records)
    return replace(bundle, records=records, erasure=erasure)


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
    checkpoint, timestamp = with_outside_anchors(conn, trail.log_id, checkpoint)
    bundle = build_bundle(conn, trail, checkpoint, keys, timestamp)
    return encode_bundle(with_erasure(conn, bundle, trail, trusted, extra_keys))


def with_outside_anchors(
    conn: Connection, log_id: int, checkpoint: StoredCheckpoint
) -> tuple[StoredCheckpoint, bytes | None]:
    """The checkpoint as a bundle carries it: the witnesses' cosignatures on its note (C2SP:
    one line per witness), and its stored RFC 3161 token (None without one)."""
    stamp = get_timestamp(conn, log_id, checkpoint.size)
    return _cosigned(conn, log_id, checkpoint), None if stamp is None else stamp.response
