"""Which stored checkpoints are signed: a checkpoint row counts for a reader only when its note
opens under the reader's verifier keys (or, when it gives none, the keys stored for the log) and
its stored ``size``/``root`` columns equal the signed ones. The bound of the read path
(:mod:`auditlog.store.trail_reads`) and of proven administrative reads
(:mod:`auditlog.store.admin_reads`).

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger import Verifier, open_checkpoint
from auditlog.store.checkpoints import StoredCheckpoint, iter_checkpoints
from auditlog.store.keys import list_keys
from auditlog.store.schema import logs

__all__ = [
    "MAX_CHECKPOINTS_TRIED",
    "LogBound",
    "earliest_signed_checkpoint",
    "first_signed",
    "log_bounds",
    "newest_signed_checkpoint",
    "reader_verifiers",
    "signing_keys_of",
]

#: Checkpoints tried, newest first, before a log is taken to have no signed checkpoint. Bounds the
#: work of every read on a log whose checkpoints no reader key signs (another writer's log, or an
#: attacker's rows); rows inserted above the real newest checkpoint can only hide it (the log
#: then reads as not covered, and ``auditlog verify`` reports those rows), never show anything.
MAX_CHECKPOINTS_TRIED = 64


@dataclass(frozen=True, slots=True)
class LogBound:
    """A log's readable range ``[0, checkpoint.size)`` and how its checkpoint was opened."""

    log_id: int
    origin: str
    checkpoint: StoredCheckpoint
    trusted: bool  # signed by a key the reader was given (else: by a key stored in the database)


def reader_verifiers(conn: Connection, log_id: int, trusted: Sequence[Verifier]) -> list[Verifier]:
    """``trusted`` when given, else the keys stored for the log (those that parse)."""
    if trusted:
        return list(trusted)
    found = []
    for key in list_keys(conn, log_id):
        try:
            found.append(Verifier.from_key_string(key.verifier_key))
        except FormatError:
            continue
    return found


def first_signed(
    candidates: Iterable[StoredCheckpoint], verifiers: Sequence[Verifier], origin: str
) -> StoredCheckpoint | None:
    """The first of ``candidates`` whose note opens under ``verifiers`` for ``origin`` and whose
    stored size and root equal the signed ones; None when none does."""
    for stored in candidates:
        try:
            cp = open_checkpoint(stored.note, verifiers, origin=origin)
        except (FormatError, VerificationError):
            continue
        if cp.size == stored.size and cp.root == stored.root:
            return stored
    return None


def newest_signed_checkpoint(
    conn: Connection, log_id: int, origin: str, trusted: Sequence[Verifier]
) -> LogBound | None:
    """The log's newest checkpoint whose note opens under ``trusted`` (when given; else under
    the keys stored for the log, which makes it untrusted) and whose stored columns equal the
    signed size, root and origin. None when there is none."""
    verifiers = reader_verifiers(conn, log_id, trusted)
    if not verifiers:
        return None
    tried = iter_checkpoints(conn, log_id, newest_first=True, max_size=None)
    found = first_signed(itertools.islice(tried, MAX_CHECKPOINTS_TRIED), verifiers, origin)
    return None if found is None else LogBound(log_id, origin, found, trusted=bool(trusted))


def log_bounds(conn: Connection, trusted: Sequence[Verifier]) -> dict[int, LogBound]:
    """The readable range of every log that has a signed checkpoint (see module docstring)."""
    bounds = {}
    for log_id, origin in conn.execute(select(logs.c.id, logs.c.origin).order_by(logs.c.id)):
        bound = newest_signed_checkpoint(conn, log_id, origin, trusted)
        if bound is not None:
            bounds[log_id] = bound
    return bounds


def earliest_signed_checkpoint(
    conn: Connection, log_id: int, origin: str, trusted: Sequence[Verifier], *, min_size: int
) -> StoredCheckpoint | None:
    """The log's earliest checkpoint of size ``>= min_size`` whose note opens under ``trusted``
    (when given; else under the keys stored for the log) and whose stored size and root equal the
    signed ones (the checkpoint a bundle pins an administrative record to). None when none."""
    verifiers = reader_verifiers(conn, log_id, trusted)
    if not verifiers:
        return None
    tried = iter_checkpoints(conn, log_id, newest_first=False, min_size=min_size, max_size=None)
    return first_signed(itertools.islice(tried, MAX_CHECKPOINTS_TRIED), verifiers, origin)


def signing_keys_of(
    conn: Connection, log_id: int, note: str, extra_keys: Sequence[str] = ()
) -> list[str]:
    """The known verifier keys (stored for the log, plus ``extra_keys``) that signed ``note``."""
    candidates = {k.verifier_key for k in list_keys(conn, log_id)} | set(extra_keys)
    signed = []
    for key in sorted(candidates):
        try:
            open_checkpoint(note, [Verifier.from_key_string(key)])
        except (FormatError, VerificationError):
            continue
        signed.append(key)
    return signed
