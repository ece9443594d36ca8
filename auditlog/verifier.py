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
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from auditlog.errors import AuditlogError, ConfigurationError, FormatError
from auditlog.ledger import (
    DirectoryWitness,
    Finding,
    FindingCode,
    Report,
    Signer,
    Verifier,
    parse_checkpoint,
    verify_log,
)
from auditlog.ledger.held_erasures import check_held_erasures
from auditlog.ledger.note import split_note
from auditlog.ledger.report import PENDING_SUFFIX, Verdict
from auditlog.ledger.shred import check_data_keys, erasures_by_request
from auditlog.ledger.stitch import LogState
from auditlog.ledger.tables import (
    check_anchor_rows,
    check_key_rows,
    check_payload_rows,
    check_witnessed_stored,
    orphan_rows,
    signers_of,
)
from auditlog.ledger.verify import verify_ranges
from auditlog.standby import check_standby, lag_reason, split_lagging, vanished_reason
from auditlog.store import create_db_engine, one_snapshot, read_data_keys
from auditlog.store.audit_reads import (
    anchor_sizes,
    checkpoint_rows,
    record_seqs_below,
    rows_per_log,
)
from auditlog.store.keys import list_keys
from auditlog.store.ledger_store import LogInfo, list_logs
from auditlog.verify_ranges import MIN_RANGE_LEVEL, DbPlan, RangePool
from auditlog.verify_resume import check_prefix, check_unread_rows, prove_old_roots
from auditlog.verify_state import read_state, write_state

__all__ = ["DatabaseReport", "RequestVerdict", "verify_database"]

#: The pseudo-log that carries findings about rows of no listed log.
NO_LOG = "(rows of no log)"


@dataclass(slots=True)
class RequestVerdict:
    """The verdict ``verify --request`` gives for one request id."""

    request_id: str
    verdict: Verdict
    reason: str
    log: str | None = None
    seqs: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass(slots=True)
class DatabaseReport:
    """Outcome of verifying every selected log of a database."""

    logs: list[Report] = field(default_factory=list)
    keys_from_database: bool = False
    unproven: list[str] = field(default_factory=list)  # reasons not about one log
    request: RequestVerdict | None = None

    @property
    def ok(self) -> bool:
        """No integrity failure (this alone proves nothing: see ``verdict``)."""
        return all(r.ok for r in self.logs)

    @property
    def verdict(self) -> Verdict:
        verdicts = [r.verdict for r in self.logs]
        if self.unproven:
            verdicts.append(Verdict.UNPROVEN)
        if self.request is not None:
            verdicts.append(self.request.verdict)
        return Verdict.worst(verdicts)

    @property
    def anchored(self) -> dict[str, int]:
        """origin -> size of its largest trusted checkpoint that matched the records."""
        return {r.log: r.anchored_size for r in self.logs if r.anchored_size is not None}

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.logs for f in r.findings]

    @property
    def records(self) -> int:
        return sum(r.size for r in self.logs)

    @property
    def tokens(self) -> int:
        return sum(r.counts.get("tokens", 0) for r in self.logs)

    @property
    def open_chains(self) -> list[Finding]:
        return [f for r in self.logs for f in r.findings if f.code is FindingCode.CHAIN_OPEN]


@dataclass(slots=True)
class _Anchors:
    """What the caller trusts, from outside the database."""

    keys: dict[str, list[Verifier]]  # origin -> keys bound to it
    witness: DirectoryWitness | None
    trusted: dict[str, list[str]]  # origin -> checkpoint notes the caller holds

    def kept_notes(self, origin: str) -> list[str]:
        """Every checkpoint note of ``origin`` kept outside the database. A file that is not
        text is passed on as it is, so that the verifier reports it (``witness.invalid``)."""
        notes = list(self.trusted.get(origin, []))
        if self.witness is not None:
            for size in self.witness.sizes(origin):
                data = self.witness.path_of(origin, size).read_bytes()
                notes.append(data.decode("utf-8", errors="replace"))
        return notes

    def vouched(self) -> set[str]:
        found = set(self.trusted)
        return found | (self.witness.origins() if self.witness is not None else set())


def _anchors(
    keys: Sequence[str], witness_dir: str | Path | None, trusted_checkpoints: Sequence[str]
) -> _Anchors:
    bound: dict[str, list[Verifier]] = {}
    for key in keys:
        try:
            verifier = Verifier.from_key_string(key.strip())
        except FormatError as exc:
            raise ConfigurationError(f"bad verifier key: {exc}") from exc
        bound.setdefault(verifier.name, []).append(verifier)
    witness = None
    if witness_dir is not None:
        if not Path(witness_dir).is_dir():
            raise ConfigurationError(f"witness directory {witness_dir} does not exist")
        witness = DirectoryWitness(witness_dir)
    trusted: dict[str, list[str]] = {}
    for note in trusted_checkpoints:
        try:
            cp = parse_checkpoint(split_note(note)[0])
        except FormatError as exc:
            raise ConfigurationError(f"trusted checkpoint is not a checkpoint note: {exc}") from exc
        trusted.setdefault(cp.origin, []).append(note)
    return _Anchors(bound, witness, trusted)


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
    anchors = _anchors(keys, witness_dir, trusted_checkpoints)
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
            _add_vanished(report, all_logs, anchors, origin, standby)
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
        report.request = _request_verdict(report, request_id)
    return report


class _Run:
    """One ``verify_database`` run: what it trusts, and the states it starts from and reaches."""

    def __init__(
        self,
        anchors: _Anchors,
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
            prove_old_roots(conn, log.id, resume, {r.size for r in rows} | _sizes(kept))
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
        _trust_reasons(report, anchors, [r.note for r in rows])
        newest = max(stored_sizes, default=None)
        report.unproven.extend(lag_reason(size, newest) for size in lagging)
        return report


def _sizes(notes: list[str]) -> set[int]:
    """The sizes of the checkpoint notes that parse (the others are reported by the verifier)."""
    found = set()
    for note in notes:
        try:
            found.add(parse_checkpoint(split_note(note)[0]).size)
        except AuditlogError:
            continue
    return found


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


def _trust_reasons(report: Report, anchors: _Anchors, notes: list[str]) -> None:
    """Why a log is not proven by an outside anchor, in front of the other reasons."""
    reasons = []
    if not anchors.keys.get(report.log):
        signers = sorted({f"{n}+{kid.hex()}" for note in notes for n, kid in signers_of(note)})
        given = sorted(f"{v.name}+{v.key_id.hex()}" for vs in anchors.keys.values() for v in vs)
        reasons.append(
            f"no trusted key for origin {report.log!r}: its checkpoints are signed by "
            f"{', '.join(signers) or 'nobody'}; trusted {', '.join(given) or 'none (no --key)'}"
        )
    if anchors.witness is not None and not anchors.witness.sizes(report.log):
        reasons.append(f"the witness directory holds no checkpoint of {report.log!r}")
    report.unproven[:0] = reasons


def _add_vanished(
    report: DatabaseReport,
    present: list[LogInfo],
    anchors: _Anchors,
    origin: str | None,
    standby: bool = False,
) -> None:
    """A log the witness (or the caller) vouches for but the database no longer has was deleted
    whole: verify it as the empty log it now is (C10: caught as a rollback)."""
    vouched = anchors.vouched() - {log.origin for log in present}
    for missing in sorted(vouched if origin is None else vouched & {origin}):
        keys = anchors.keys.get(missing, [])
        if standby:  # created on the primary, not yet replayed here
            lagging = Report(log=missing)
            lagging.unproven.append(vanished_reason(missing))
            report.logs.append(lagging)
            continue
        if not keys:  # nothing to check the kept notes with: not proven either way
            gone = Report(log=missing)
            gone.unproven.append(
                f"checkpoints of {missing!r} are kept outside the database, which has no such "
                f"log, and no --key for it checks them"
            )
            report.logs.append(gone)
            continue
        report.logs.append(
            verify_log(
                origin=missing, records=(), verifiers=keys, witnessed=anchors.kept_notes(missing)
            )
        )


def _request_verdict(report: DatabaseReport, request_id: str) -> RequestVerdict:
    claims = [r for r in report.logs if r.request_seqs]
    if not claims:
        return RequestVerdict(request_id, Verdict.UNPROVEN, f"no request {request_id!r}")
    if len(claims) > 1:
        names = ", ".join(r.log for r in claims)
        return RequestVerdict(
            request_id, Verdict.UNPROVEN, f"request {request_id!r} is claimed by logs {names}"
        )
    log = claims[0]
    seqs = set(log.request_seqs)
    findings = [f for f in log.findings if f.index in seqs]
    covered = log.anchored_size is not None and max(seqs) < log.anchored_size
    trust = [r for r in log.unproven if not r.endswith(PENDING_SUFFIX)]
    if findings or not log.ok:
        verdict, reason = Verdict.FAILED, "its log failed verification"
    elif trust:
        verdict, reason = Verdict.UNPROVEN, trust[0]
    elif not covered:
        verdict, reason = Verdict.UNPROVEN, "not yet covered by a trusted checkpoint (pending)"
    else:
        verdict, reason = Verdict.INTACT, "covered by a trusted checkpoint"
    return RequestVerdict(request_id, verdict, reason, log.log, sorted(seqs), findings)
