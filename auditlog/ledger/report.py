"""Values the verifier consumes and produces: stored records in, findings, verdicts and reports out.

A :class:`Report` is the outcome of one log; its :attr:`Report.verdict` is one of three
(docs/TRUST.md): ``intact`` (every record is covered by a checkpoint signed by a key the caller
trusts, and nothing failed), ``failed`` (an integrity failure: some finding of severity error),
``unproven`` (nothing failed, but nothing was proven either: no trusted anchor, records not yet
covered by a trusted checkpoint, an empty log). Each reason it is not intact is kept in
:attr:`Report.unproven`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "PENDING_SUFFIX",
    "CheckpointRow",
    "Finding",
    "FindingCode",
    "FindingCollector",
    "Report",
    "Severity",
    "StoredRecord",
    "Verdict",
]

#: The end of every ``Report.unproven`` reason that is only "records not yet covered".
PENDING_SUFFIX = "(pending)"

#: Findings kept per code; further ones are only counted (``Report.suppressed``).
MAX_FINDINGS_PER_CODE = 100


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us per instance on the hot path
class StoredRecord:
    """One record as stored: the hashed bytes, the stored leaf, payload and indexed columns."""

    seq: int
    body: bytes
    leaf: bytes
    payload: bytes | None
    kind: str
    request_id: str | None
    req_seq: int | None
    tenant: str | None
    ts: int


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """One stored checkpoint: the signed note and the ``size``/``root`` columns copied from it
    (the verifier checks that the columns equal the note, FORMAT.md section 7)."""

    size: int
    root: bytes
    note: str


class Severity(enum.StrEnum):
    ERROR = "error"  # integrity failure: the log cannot be trusted as stored
    WARNING = "warning"  # nothing failed, but it keeps the verdict from "intact" (see Report)


class Verdict(enum.StrEnum):
    """What a verification proved; the CLI's exit codes are 0, 1 and 3 in this order."""

    INTACT = "intact"
    FAILED = "failed"
    UNPROVEN = "unproven"

    @property
    def exit_code(self) -> int:
        return {Verdict.INTACT: 0, Verdict.FAILED: 1, Verdict.UNPROVEN: 3}[self]

    @staticmethod
    def worst(verdicts: list[Verdict]) -> Verdict:
        """FAILED over UNPROVEN over INTACT; no verdict at all is UNPROVEN."""
        if Verdict.FAILED in verdicts:
            return Verdict.FAILED
        if not verdicts or Verdict.UNPROVEN in verdicts:
            return Verdict.UNPROVEN
        return Verdict.INTACT


class FindingCode(enum.StrEnum):
    LEAF_MISMATCH = "leaf.mismatch"
    HEADER_INVALID = "header.invalid"
    LOG_MISMATCH = "header.log"
    SEQ_MISMATCH = "seq.mismatch"
    COLUMN_MISMATCH = "column.mismatch"
    PAYLOAD_MISMATCH = "payload.mismatch"
    PAYLOAD_UNEXPECTED = "payload.unexpected"
    PAYLOAD_ABSENT = "payload.absent"
    PAYLOAD_ORPHAN = "payload.orphan"
    CHAIN_REQ_SEQ = "chain.req_seq"
    CHAIN_PREV = "chain.prev"
    CHAIN_NOT_OPEN = "chain.not_open"
    CHAIN_RESTARTED = "chain.restarted"
    CHAIN_TENANT = "chain.tenant"
    CHAIN_OPEN = "chain.open"
    TOKENS_PROV = "tokens.prov"
    TOKENS_PAYLOAD = "tokens.payload"
    END_COUNTS = "end.counts"
    STEP_MISMATCH = "step.mismatch"
    STEP_UNRECONCILED = "step.unreconciled"
    NODE_MISMATCH = "node.mismatch"
    NODE_MISSING = "node.missing"
    NODE_EXTRA = "node.extra"
    CHECKPOINT_INVALID = "checkpoint.invalid"
    CHECKPOINT_ROOT = "checkpoint.root"
    CHECKPOINT_TRUNCATED = "checkpoint.truncated"
    CHECKPOINT_COLUMN = "checkpoint.column"
    CHECKPOINT_MISSING = "checkpoint.missing"
    KEY_ROW = "key.row"
    ROW_ORPHAN = "row.orphan"
    ANCHOR_ORPHAN = "anchor.orphan"
    WITNESS_INVALID = "witness.invalid"
    WITNESS_ROLLBACK = "witness.rollback"
    WITNESS_REWRITE = "witness.rewrite"
    TAIL_UNSIGNED = "tail.unsigned"
    KEY_ABSENT = "key.absent"
    KEY_MISMATCH = "key.mismatch"
    KEY_ORPHAN = "key.orphan"
    ERASURE_INCOMPLETE = "erasure.incomplete"
    ERASURE_HELD = "erasure.held"
    STATE_PREFIX = "state.prefix"
    ROWS_UNREAD = "rows.unread"


#: Findings that are not integrity failures: an open chain is a request in flight (or a crash
#: that recovery will close). They do not fail a log, nor do they keep it from "intact" when its
#: records are covered by a trusted checkpoint.
_WARNINGS = frozenset({FindingCode.CHAIN_OPEN})


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where (log, record index or tree size), what, expected vs actual."""

    log: str
    index: int | None
    code: FindingCode
    expected: str
    actual: str
    message: str

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code in _WARNINGS else Severity.ERROR


@dataclass(frozen=True, slots=True)
class Erasure:
    """The signed erasure record that shredded a request's payloads (C16)."""

    log: str  # the log holding the erasure record
    index: int  # its position (seq) there
    reason: str
    legal_basis: str
    principal: str
    ts: int
    anchored: bool  # covered by a checkpoint signed by a trusted key of its log


@dataclass(slots=True)
class Report:
    """Outcome of verifying one log.

    ``anchored_size`` is the size of the largest checkpoint that verified under a trusted key
    and matched the records (None: no such checkpoint); records ``[anchored_size, size)`` are
    pending (not yet covered). ``unproven`` lists why the log is not proven intact even when no
    finding is an error.
    """

    log: str
    size: int = 0
    root: bytes = b""
    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[FindingCode, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    anchored_size: int | None = None
    unproven: list[str] = field(default_factory=list)
    request_seqs: list[int] = field(default_factory=list)  # seqs of the request asked about
    # C16: request id -> (index of its request.start, hex SHA-256 of its wrapped data key)
    sealed: dict[str, tuple[int, str]] = field(default_factory=dict)
    # C16: the erasure records of this log: (index, parsed header)
    erasures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # C15: the admin records of this log (holds, releases, refusals): (index, parsed header)
    admin: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # C15: sealed request id -> the request.start members a hold's scope reads
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # C16: request id -> the erasure that accounts for its shredded data key
    erased: dict[str, Erasure] = field(default_factory=dict)
    # the size of the saved state a resumed run started from (records below it were not read)
    resumed_from: int | None = None

    @property
    def ok(self) -> bool:
        """True when no integrity failure was found (this alone proves nothing: see verdict)."""
        return not any(f.severity is Severity.ERROR for f in self.findings) and not any(
            code not in _WARNINGS for code in self.suppressed
        )

    @property
    def verdict(self) -> Verdict:
        if not self.ok:
            return Verdict.FAILED
        return Verdict.UNPROVEN if self.unproven else Verdict.INTACT

    def first(self, code: FindingCode) -> Finding | None:
        """The first finding with ``code``, or None."""
        return next((f for f in self.findings if f.code is code), None)


class FindingCollector:
    """Adds findings to a report, keeping at most MAX_FINDINGS_PER_CODE per code."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.per_code: dict[FindingCode, int] = {}

    def add(
        self, index: int | None, code: FindingCode, expected: object, actual: object, message: str
    ) -> None:
        seen = self.per_code.get(code, 0)
        self.per_code[code] = seen + 1
        if seen >= MAX_FINDINGS_PER_CODE:
            self.report.suppressed[code] = self.report.suppressed.get(code, 0) + 1
            return
        self.report.findings.append(
            Finding(self.report.log, index, code, str(expected), str(actual), message)
        )

    def absorb(self, findings: list[Finding], suppressed: dict[FindingCode, int]) -> None:
        """Add the findings (and counts of suppressed ones) of a part of this log."""
        for f in findings:
            self.add(f.index, f.code, f.expected, f.actual, f.message)
        for code, n in suppressed.items():
            self.per_code[code] = self.per_code.get(code, 0) + n
            self.report.suppressed[code] = self.report.suppressed.get(code, 0) + n
