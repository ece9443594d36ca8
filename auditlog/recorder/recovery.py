"""Resuming a log after a restart: the checks that come before the first new record.

Crash recovery itself (closing chains left open as ``interrupted``) is in ``translate``; the
outage spool's checked replay is in ``spool``. This module refuses to resume a database that a
witness has seen larger, or with another history (C10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from auditlog.errors import RecorderError
from auditlog.ledger import parse_checkpoint, root_hash
from auditlog.ledger.note import split_note
from auditlog.store import StoredNodeSource

from .sequencer import LogSequencer

__all__ = ["check_against_witnesses"]


def check_against_witnesses(conn: Connection, seq: LogSequencer, witnesses: Sequence[Any]) -> None:
    """Refuse to resume a log that a witness has seen larger, or with another history: the
    database was rolled back or rewritten, and appending would fork the log (C10)."""
    size = seq.size
    source = StoredNodeSource(conn, seq.log_id)
    for witness in witnesses:
        latest = getattr(witness, "latest", None)
        note = latest(seq.origin) if latest is not None else None
        if note is None:
            continue
        cp = parse_checkpoint(split_note(note)[0])
        if cp.size > size:
            raise RecorderError(
                f"log {seq.origin}: a witness holds a checkpoint of size {cp.size}, the "
                f"database has {size} records: it was rolled back; refusing to resume"
            )
        if cp.size and root_hash(cp.size, source) != cp.root:
            raise RecorderError(
                f"log {seq.origin}: the database's tree at size {cp.size} differs from the "
                "witnessed checkpoint: it was rewritten; refusing to resume"
            )
