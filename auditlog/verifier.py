"""Verify a whole database: read each log from the store, check it with the pure ledger verifier.

This is the I/O edge of ``auditlog verify`` (docs/TRUST.md). It opens the database read-only (a
missing SQLite file is a configuration error, never a new empty database reported as intact),
streams every row of every log into :func:`auditlog.ledger.verify_log` and decides the verdict:

- ``intact`` only when every log is anchored: its checkpoints verify under a key the caller gave
  out of band (``keys``; a key is bound to the log whose origin is its name), and every record is
  covered by such a checkpoint (or by a witnessed or caller-held one, signed by such a key);
- ``failed`` on any integrity finding, including rows of any table that no hashed record
  accounts for;
- ``unproven`` when nothing failed but something was not proven: no key for a log (its own
  stored keys are then used, to find damage, never to vouch), records not yet covered, an empty
  database or log, a witness that holds nothing of a log, a request that does not exist.

``jobs`` > 1 checks each log's records in ranges in that many processes
(:mod:`auditlog.verify_ranges`). With a state file (:mod:`auditlog.verify_state`), a log whose
state was saved is checked from there on (:mod:`auditlog.verify_resume`), and the state of
each log that had no integrity failure is saved for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Connection

from auditlog.errors import AuditlogError
from auditlog.ledger import Report, Signer, Verifier
from auditlog.ledger.held_erasures import check_held_erasures
from auditlog.ledger.shred import check_data_keys, erasures_by_request
from auditlog.ledger.stitch import LogState
from auditlog.ledger.tables import (
    check_anchor_rows,
    check_key_rows,
    check_payload_rows,
    check_witnessed_stored,
    orphan_rows,
)
from auditlog.ledger.verify import verify_ranges
from auditlog.standby import check_standby, lag_reason, split_lagging
from auditlog.store import create_db_engine, one_snapshot, read_data_keys
from auditlog.store.audit_reads import (
    anchor_sizes,
    checkpoint_rows,
    record_seqs_below,
    rows_per_log,
)
from auditlog.store.keys import list_keys
from auditlog.store.ledger_store import LogInfo, list_logs
from auditlog.verify_anchors import (
    Anchors,
    add_vanished,
    checkpoint_sizes,
    load_anchors,
    trust_reasons,
)
from auditlog.verify_outcome import NO_LOG, DatabaseReport, RequestVerdict, request_verdict
from auditlog.verify_ranges import MIN_RANGE_LEVEL, DbPlan, RangePool
from auditlog.verify_resume import check_prefix, check_unread_rows, prove_old_roots
from auditlog.verify_state import read_state, write_state

__all__ = ["DatabaseReport", "RequestVerdict", "verify_database"]


def verify_database(
    db_url: str,
    *,
    keys: Sequence[str] = (),
    witness_dir: str | Path | None = None,
    trusted_checkpoints: Sequence[str] = (),
    origin: str | None = None,
    request_id: str | None = None,
    max_pending_s: float | None = None,
    progress: Callable[[int], None] | None = None,
    on_log: Callable[[str, int], None] | None = None,
    standby: bool = False,
    jobs: int = 1,
    state_path: Path | None = None,
    state_key: Signer | None = None,
    min_range_level: int = MIN_RANGE_LEVEL,
) -> DatabaseReport:
    """Verify the logs of ``db_url`` (all, or the one named ``origin``); see the module docstring.

    ``keys``: verifier-key strings (``name+hexid+base64``), each bound to the log whose origin is
    its name. ``trusted_checkpoints``: signed checkpoint notes the caller holds. ``witness_dir``:
    a directory witness. ``max_pending_s``: records not covered by a trusted checkpoint whose
    ``ts`` is older are a failure. ``progress`` gets the number of records verified so far in
    the current log; ``on_log`` gets (origin, number of rows) before each log. ``standby``: the
    database is a streaming replica that may lag (``auditlog/standby.py``): kept checkpoints it
    does not store yet are a pending tail, not a rollback.
    Raises ConfigurationError for bad keys, a missing witness directory or database.

    ``jobs``: processes checking ranges of each log (of at least 2^``min_range_level``
    records). ``state_path``/``state_key``: the state file of incremental verification and the
    key that signs it (a run with ``request_id`` reads every record, and saves the state too).
    """
    anchors = load_anchors(keys, witness_dir, trusted_checkpoints)
    max_pending_ns = None if max_pending_s is None else int(max_pending_s * 1e9)
    report = DatabaseReport(keys_from_database=not anchors.keys)
    saved = {} if state_path is None or state_key is None else read_state(state_path, state_key)
    run = _Run(anchors, request_id, max_pending_ns, progress, saved, standby)
    engine = create_db_engine(db_url, read_only=True)
    pool = RangePool(jobs, min_level=min_range_level)
    try:
        with engine.connect() as conn:
            one_snapshot(conn)  # the row counts and the records are read in one snapshot
            if standby:
                check_standby(conn)
            all_logs = list_logs(conn)
            counts = rows_per_log(conn)
            logs = [log for log in all_logs if origin is None or log.origin == origin]
            for log in logs:
                num_rows = counts["records"].get(log.id, 0)
                if on_log is not None:
                    on_log(log.origin, num_rows)
                plan = DbPlan(db_url, conn, log.id, num_rows, pool, progress)
                log_report = run.verify_one(conn, log, plan, counts)
                check_payload_rows(log_report, counts["payloads"].get(log.id, 0))
                report.logs.append(log_report)
            _check_keys(conn, report, logs, whole=origin is None)
            add_vanished(report, all_logs, anchors, origin, standby)
            orphans = orphan_rows(NO_LOG, counts, {log.id for log in all_logs})
            if origin is None and orphans is not None:
                report.logs.append(orphans)
    finally:
        pool.close()
        engine.dispose()
    if state_path is not None and state_key is not None:
        fresh = {r.log: run.states[r.log] for r in report.logs if r.ok and r.log in run.states}
        write_state(state_path, state_key, {**saved, **fresh})
    if not report.logs:
        what = "the database holds no log" if origin is None else f"no log {origin!r}"
        report.unproven.append(what)
    if request_id is not None:
        report.request = request_verdict(report, request_id)
    return report


class _Run:
    """One ``verify_database`` run: what it trusts, and the states it starts from and reaches."""

    def __init__(
        self,
        anchors: Anchors,
        request_id: str | None,
        max_pending_ns: int | None,
        progress: Callable[[int], None] | None,
        saved: dict[str, LogState],
        standby: bool = False,
    ) -> None:
        self.anchors, self.request_id, self.max_pending_ns = anchors, request_id, max_pending_ns
        self.progress, self.saved, self.standby = progress, saved, standby
        self.states: dict[str, LogState] = {}

    def verify_one(
        self, conn: Connection, log: LogInfo, plan: DbPlan, counts: dict[str, dict[int, int]]
    ) -> Report:
        anchors = self.anchors
        rows = checkpoint_rows(conn, log.id)
        stored_sizes = {r.size for r in rows}
        stored_keys = list_keys(conn, log.id)
        verifiers = anchors.keys.get(log.origin, [])
        # Kept checkpoints can only be checked against a trusted key; without one the database's
        # own keys are used to find damage inside it, and vouch for nothing.
        kept = anchors.kept_notes(log.origin) if verifiers else []
        if not verifiers:
            verifiers = [
                v for k in stored_keys if (v := _parse_stored_key(k.verifier_key)) is not None
            ]
        lagging: list[int] = []
        if self.standby:  # kept checkpoints a lagging standby does not store yet: pending
            kept, lagging = split_lagging(kept, stored_sizes)
        resume = None if self.request_id is not None else self.saved.get(log.origin)
        prefix_problem, saved_size = None, None if resume is None else resume.size
        if resume is not None:
            prefix_problem = check_prefix(conn, log.id, resume)
            prove_old_roots(conn, log.id, resume, {r.size for r in rows} | checkpoint_sizes(kept))
        report, state = verify_ranges(
            origin=log.origin,
            plan=plan,
            checkpoints=rows,
            verifiers=verifiers,
            witnessed=kept,
            request_id=self.request_id,
            max_pending_ns=self.max_pending_ns,
            now_ns=time.time_ns(),
            resume=resume,
        )
        if self.progress is not None:
            self.progress(report.size)
        if saved_size is not None:
            num_records = counts["records"].get(log.id, 0)
            num_nodes = counts["nodes"].get(log.id, 0)
            below = (saved_size, record_seqs_below(conn, log.id, saved_size))
            check_unread_rows(report, num_records, num_nodes, prefix_problem, below)
        self.states[log.origin] = state
        check_key_rows(
            report, stored_keys, anchors.keys.get(log.origin, []), [r.note for r in rows]
        )
        check_anchor_rows(report, anchor_sizes(conn, log.id), stored_sizes)
        if anchors.witness is not None:
            witnessed = anchors.witness.sizes(log.origin)
            if self.standby:
                witnessed = [size for size in witnessed if size in stored_sizes]
            check_witnessed_stored(report, witnessed, stored_sizes)
        trust_reasons(report, anchors, [r.note for r in rows])
        newest = max(stored_sizes, default=None)
        report.unproven.extend(lag_reason(size, newest) for size in lagging)
        return report


def _check_keys(conn: Connection, report: DatabaseReport, logs: list[LogInfo], whole: bool) -> None:
    """Wrapped data keys against sealed requests and erasure records (C16). Erasures may
    sit in any log, so only a whole-database run can account for an absent key."""
    stored = {log.origin: read_data_keys(conn, log.id) for log in logs}
    erasures = erasures_by_request(report.logs) if whole else None
    check_data_keys(report.logs, stored, erasures=erasures)
    check_held_erasures(report.logs)


def _parse_stored_key(text: str) -> Verifier | None:
    try:
        return Verifier.from_key_string(text)
    except AuditlogError:
        return None  # reported by check_key_rows
