"""Proven reads of administrative logs: the records a decision (erase, release, retention) may
rest on (C15, C16).

A database writer can INSERT rows (docs/TRUST.md section 2), so a ``hold.release`` row proves
nothing by being there. :func:`proven_admin_logs` returns only the records of the logs whose
newest checkpoint is signed by a key the caller holds (:func:`newest_signed_checkpoint`, the
read path's bound), read in ``[0, size)`` of that checkpoint and checked against its signed
root: every record is the one the key holder signed, in its place. It is fail-safe: an
administrative log with rows outside that range (an unsigned tail, rows at odd ``seq``), or with
records and no checkpoint that opens under the caller's key, raises
:class:`UnprovenAdminLogError` instead of being read as if it were smaller. So does a log whose
signed checkpoint is buried under more unsigned checkpoint rows than the read path tries (a
writer's INSERTs), when the caller knows it by name, instead of being read as if it held
nothing.

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, or_, select

from auditlog.errors import AuditlogError, FormatError, StoreError, VerificationError
from auditlog.ledger import MerkleFrontier, RecordKind, Verifier, leaf_hash, verify_inclusion
from auditlog.ledger.merkle_proofs import inclusion_proofs
from auditlog.store.ledger_reads import (
    StoredNodeSource,
    StoredRecord,
    iter_records,
    read_record,
)
from auditlog.store.schema import checkpoints, logs, records
from auditlog.store.signed_checkpoints import (
    MAX_CHECKPOINTS_TRIED,
    LogBound,
    newest_signed_checkpoint,
)

__all__ = ["ProvenLog", "UnprovenAdminLogError", "proven_admin_logs", "reader_admin_logs"]


class UnprovenAdminLogError(AuditlogError):
    """An administrative log's records are not all covered by a checkpoint that verifies under
    the caller's key: decisions that rest on its holds are refused rather than taken."""


@dataclass(frozen=True, slots=True)
class ProvenLog:
    """The records ``[0, bound.checkpoint.size)`` of one administrative log, proven against its
    signed checkpoint, in ``seq`` order (for a log a reader found only by its ``kind`` cells:
    its administrative records alone, each proven by inclusion)."""

    bound: LogBound
    records: list[StoredRecord]


def _outside_rows(conn: Connection, log_id: int, size: int) -> bool:
    """Whether the log holds a row at a ``seq`` outside ``[0, size)``."""
    query = (
        select(records.c.seq)
        .where(records.c.log_id == log_id, or_(records.c.seq < 0, records.c.seq >= size))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def _prove(conn: Connection, bound: LogBound, *, strict: bool) -> ProvenLog:
    size, origin = bound.checkpoint.size, bound.origin
    if strict and _outside_rows(conn, bound.log_id, size):
        raise UnprovenAdminLogError(
            f"administrative log {origin!r} has records beyond its signed checkpoint (size "
            f"{size}): refusing to decide on holds that are not proven; run auditlog verify"
        )
    rows = list(iter_records(conn, bound.log_id, 0, size))
    frontier = MerkleFrontier()
    for expected, row in enumerate(rows):
        if row.seq != expected:
            break
        frontier.append(leaf_hash(row.body))
    if len(rows) != size or frontier.size != size or frontier.root() != bound.checkpoint.root:
        raise UnprovenAdminLogError(
            f"administrative log {origin!r}: its records do not match its signed checkpoint "
            f"(size {size}): refusing to decide on holds that are not proven; run auditlog verify"
        )
    return ProvenLog(bound, rows)


def _prove_rows(conn: Connection, bound: LogBound) -> ProvenLog:
    """The administrative rows (by the ``kind`` column) of a log found only by that column, each
    checked by an inclusion proof against ``bound``'s signed root: O(rows x log n), never the
    whole log (an engine's log may hold a few ``admin`` records, e.g. ``event.refused``, among
    millions). A row whose proof fails is left out (``auditlog verify`` reports it)."""
    kinds = (RecordKind.ADMIN.value, RecordKind.ERASURE.value)
    size = bound.checkpoint.size
    query = (
        select(records.c.seq)
        .where(records.c.log_id == bound.log_id, records.c.kind.in_(kinds))
        .where(records.c.seq >= 0, records.c.seq < size)
        .order_by(records.c.seq)
    )
    rows = [read_record(conn, bound.log_id, seq) for (seq,) in conn.execute(query)]
    if not rows:
        return ProvenLog(bound, [])
    try:
        proofs = inclusion_proofs([r.seq for r in rows], size, StoredNodeSource(conn, bound.log_id))
    except StoreError:
        return ProvenLog(bound, [])  # nodes missing: nothing proven (verify reports it)
    proven = []
    for row, proof in zip(rows, proofs, strict=True):
        try:
            verify_inclusion(leaf_hash(row.body), row.seq, size, proof, bound.checkpoint.root)
        except (FormatError, VerificationError):
            continue
        proven.append(row)
    return ProvenLog(bound, proven)


def _beyond_search(conn: Connection, log_id: int) -> bool:
    """Whether the log holds more checkpoint rows than :func:`newest_signed_checkpoint` tries."""
    query = (
        select(checkpoints.c.size)
        .where(checkpoints.c.log_id == log_id)
        .offset(MAX_CHECKPOINTS_TRIED)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def _candidate_logs(conn: Connection, names: Sequence[str]) -> list[tuple[int, str]]:
    """The logs that may hold administrative records, by id: those holding any ``admin`` or
    ``erasure`` record by the ``kind`` column, and those named ``names`` (the administrative
    logs the caller knows by name). The ``kind`` column is an unsigned copy of the header's
    kind: a log whose every kind cell was edited is still found by its name."""
    kinds = (RecordKind.ADMIN.value, RecordKind.ERASURE.value)
    having = select(records.c.log_id).where(records.c.kind.in_(kinds)).distinct()
    where: ColumnElement[bool] = logs.c.id.in_(having)
    if names:
        where = or_(where, logs.c.origin.in_(sorted(set(names))))
    query = select(logs.c.id, logs.c.origin).where(where).order_by(logs.c.id)
    return [(row[0], row[1]) for row in conn.execute(query)]


def _unsigned_log(conn: Connection, origin: str, proven: set[str]) -> bool:
    """Whether log ``origin`` holds records although no checkpoint of it opens under the key."""
    if origin in proven:
        return False
    query = (
        select(records.c.seq)
        .select_from(records.join(logs, logs.c.id == records.c.log_id))
        .where(logs.c.origin == origin)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def proven_admin_logs(
    conn: Connection,
    trusted: Sequence[Verifier],
    *,
    own: str | None = None,
    by_key_name: bool = True,
) -> list[ProvenLog]:
    """Every log holding administrative records whose newest checkpoint opens under ``trusted``
    (the administrative keys the caller holds), its records proven against that checkpoint.
    ``own``: the administrative log the caller writes, which must be proven if it holds any
    record. ``by_key_name``: the logs named like a key of ``trusted`` are candidates too (an
    administrative log is named after its key by default); pass False when ``trusted`` are
    engine keys, whose logs are large and decide nothing. Raises
    :class:`UnprovenAdminLogError` when a log cannot be proven (see module docstring)."""
    if not trusted:
        raise UnprovenAdminLogError("no administrative key to prove holds with")
    return _proven_logs(conn, trusted, own=own, by_key_name=by_key_name, strict=True)


def reader_admin_logs(
    conn: Connection, trusted: Sequence[Verifier], *, names: Sequence[str] = ()
) -> list[ProvenLog]:
    """The administrative logs as a trail reader may show them: proven like
    :func:`proven_admin_logs` under ``trusted``, or, with no key given, under the keys stored for
    each log (the reader's whole view is then untrusted, as its trails are). A reader shows
    only what a checkpoint covers, so rows past it (a writer's INSERT) are not read and do not
    unprove the covered records, which a decision on holds would refuse. Raises
    :class:`UnprovenAdminLogError` when the covered records do not match the checkpoint.
    ``names``: administrative logs the reader knows by name, candidates whatever their ``kind``
    cells say."""
    return _proven_logs(conn, trusted, own=None, by_key_name=False, strict=False, names=names)


def _proven_logs(
    conn: Connection,
    trusted: Sequence[Verifier],
    *,
    own: str | None,
    by_key_name: bool,
    strict: bool,
    names: Sequence[str] = (),
) -> list[ProvenLog]:
    names = [*names, *(v.name for v in trusted if by_key_name)]
    if own is not None:
        names.append(own)
    proven = []
    for log_id, origin in _candidate_logs(conn, names):
        bound = newest_signed_checkpoint(conn, log_id, origin, trusted)
        if bound is not None:
            if strict or origin in names:
                proven.append(_prove(conn, bound, strict=strict))
            else:  # found by its kind cells alone (a reader): prove those rows, not the log
                proven.append(_prove_rows(conn, bound))
        elif origin in names and _beyond_search(conn, log_id):
            raise UnprovenAdminLogError(
                f"administrative log {origin!r}: none of its newest {MAX_CHECKPOINTS_TRIED} "
                "checkpoint rows opens under the key, and it holds more (a signed one may be "
                "buried under rows nobody signed): refusing to read it as empty; run auditlog "
                "verify"
            )
    if own is not None and _unsigned_log(conn, own, {p.bound.origin for p in proven}):
        raise UnprovenAdminLogError(
            f"administrative log {own!r} has records but no checkpoint signed by the "
            f"administrative key {trusted[0].name!r}: refusing to decide on holds that are not "
            f"proven; run auditlog verify"
        )
    return proven
