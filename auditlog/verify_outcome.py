"""What ``auditlog verify`` decides for a database and for one request (``verify --request``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditlog.ledger import Finding, FindingCode, Report
from auditlog.ledger.report import PENDING_SUFFIX, Verdict

__all__ = ["NO_LOG", "DatabaseReport", "RequestVerdict", "request_verdict"]

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


def request_verdict(report: DatabaseReport, request_id: str) -> RequestVerdict:
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
