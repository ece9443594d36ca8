"""Values the verifier consumes and produces: stored records in, findings and reports out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "Finding",
    "FindingCode",
    "FindingCollector",
    "Report",
    "Severity",
    "StoredRecord",
]

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


class Severity(enum.StrEnum):
    ERROR = "error"  # integrity failure: the log cannot be trusted as stored
    WARNING = "warning"  # worth a look, not an integrity failure (open chains, erased payloads)


class FindingCode(enum.StrEnum):
    LEAF_MISMATCH = "leaf.mismatch"
    HEADER_INVALID = "header.invalid"
    LOG_MISMATCH = "header.log"
    SEQ_MISMATCH = "seq.mismatch"
    COLUMN_MISMATCH = "column.mismatch"
    PAYLOAD_MISMATCH = "payload.mismatch"
    PAYLOAD_UNEXPECTED = "payload.unexpected"
    PAYLOAD_ABSENT = "payload.absent"
    CHAIN_REQ_SEQ = "chain.req_seq"
    CHAIN_PREV = "chain.prev"
    CHAIN_NOT_OPEN = "chain.not_open"
    CHAIN_RESTARTED = "chain.restarted"
    CHAIN_OPEN = "chain.open"
    STEP_MISMATCH = "step.mismatch"
    STEP_UNRECONCILED = "step.unreconciled"
    CHECKPOINT_INVALID = "checkpoint.invalid"
    CHECKPOINT_ROOT = "checkpoint.root"
    CHECKPOINT_TRUNCATED = "checkpoint.truncated"
    WITNESS_INVALID = "witness.invalid"
    WITNESS_ROLLBACK = "witness.rollback"
    WITNESS_REWRITE = "witness.rewrite"


_WARNINGS = frozenset({FindingCode.PAYLOAD_ABSENT, FindingCode.CHAIN_OPEN})


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


@dataclass(slots=True)
class Report:
    """Outcome of verifying one log."""

    log: str
    size: int = 0
    root: bytes = b""
    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[FindingCode, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no integrity failure was found (warnings allowed)."""
        return not any(f.severity is Severity.ERROR for f in self.findings) and not any(
            code not in _WARNINGS for code in self.suppressed
        )

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
