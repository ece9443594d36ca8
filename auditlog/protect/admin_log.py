"""Appending one signed record to an administrative log (erasures, holds, refusals).

An administrative log has one writer like every log: it is never the origin a recorder writes.
Each append signs a checkpoint over the new record in the same transaction, so the decision is
covered by a signature as soon as it is committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from auditlog.errors import NotFoundError
from auditlog.ledger import Record, RecordKind, Signer
from auditlog.recorder.sequencer import LogSequencer
from auditlog.store import (
    StoredCheckpoint,
    append_batch,
    get_log_id,
    latest_checkpoint,
    register_key,
)

if TYPE_CHECKING:
    from auditlog.recorder import Witness

__all__ = ["append_admin_record", "hand_to_witnesses"]


def append_admin_record(
    conn: Connection,
    *,
    signer: Signer,
    origin: str,
    kind: RecordKind,
    fields: Mapping[str, Any],
    now_ns: int,
) -> tuple[Record, str]:
    """Append one ``kind`` record to ``origin`` with a signed checkpoint, in ``conn``'s
    transaction; returns the record and the checkpoint note."""
    seq = LogSequencer.resume(conn, origin)
    register_key(conn, seq.log_id, signer.verifier_key, created=now_ns)
    record = seq.append(kind, ts=now_ns, fields=fields)
    cp, note = seq.checkpoint([signer])
    batch = seq.drain()
    stored_cp = StoredCheckpoint(size=cp.size, root=cp.root, note=note, ts=now_ns)
    append_batch(conn, seq.log_id, batch.records, batch.nodes, checkpoint=stored_cp)
    return record, note


def hand_to_witnesses(engine: Engine, origin: str, witnesses: Sequence[Witness]) -> None:
    """Hand the newest checkpoint of the administrative log ``origin`` to each witness (C10),
    after the commit of the decision it covers (nothing to hand when the log is empty)."""
    if not witnesses:
        return
    with engine.connect() as conn:
        try:
            checkpoint = latest_checkpoint(conn, get_log_id(conn, origin))
        except NotFoundError:
            return
    if checkpoint is not None:
        for witness in witnesses:
            witness.submit(origin, checkpoint.size, checkpoint.note)
