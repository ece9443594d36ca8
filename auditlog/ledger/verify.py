"""Pure streaming verifier of one log (C8, C10, C11; docs/FORMAT.md section 7).

Input is values, never a database: the records as stored (header bytes, leaf column, payload and
the indexed column copies) in ``seq`` order, the stored checkpoints (notes, or rows with their
size/root columns), the stored Merkle nodes, the trusted public keys and the checkpoints kept
outside the database (witness, caller). Output is a :class:`Report`. Checks, in order, per record
at position i:

1. leaf column = SHA-256(0x00 || body) (RFC 9162 2.1.1); the tree uses the recomputed leaf;
2. the body is a canonical, well-typed header (:func:`~auditlog.ledger.records.parse_header`);
3. ``log`` = the origin; header ``seq`` = i (else a record was deleted, inserted or reordered);
4. every indexed column equals its header field (an edited index column hides nothing);
5. SHA-256(stored payload) = header ``payload``; a payload absent under a digest is a failure
   (erasure shreds keys, never payloads: :mod:`auditlog.ledger.shred`);
6. and 7. the chain, count and step rules of :mod:`auditlog.ledger.chain`;

and per log: every stored checkpoint is signed by a trusted key, its root equals the root
recomputed at its size and its size/root columns equal its note; every kept checkpoint's tree is
contained in the log (else the database was rolled back or rewritten, C10); every stored node
equals the recomputed subtree and none lies outside the tree. The report's ``anchored_size`` is
the largest trusted checkpoint that matched; records after it are pending (``Report.unproven``),
or a failure (``tail.unsigned``) once older than ``max_pending_ns``.
Memory is O(requests + open steps + log n).

The records are checked in ranges (:mod:`auditlog.ledger.scan`), joined in log order
(:mod:`auditlog.ledger.stitch`): one range in memory here; several, in parallel processes, or
only those after a saved :class:`~auditlog.ledger.stitch.LogState`, from the database
(:mod:`auditlog.verify_ranges`). Each way runs the same checks on every record it reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from auditlog.ledger.anchors import check_anchors, check_pending, open_checkpoints, open_kept
from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.node_check import NodeCheck, NodeLevels
from auditlog.ledger.note import Verifier
from auditlog.ledger.report import (
    MAX_FINDINGS_PER_CODE,
    CheckpointRow,
    Finding,
    FindingCode,
    FindingCollector,
    Report,
    Severity,
    StoredRecord,
    Verdict,
)
from auditlog.ledger.scan import PROGRESS_EVERY, RangeResult, RecordRow, scan_range
from auditlog.ledger.stitch import LogState, Misaligned, Stitcher

__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "PROGRESS_EVERY",
    "CheckpointRow",
    "Finding",
    "FindingCode",
    "RangePlan",
    "Report",
    "Severity",
    "StoredRecord",
    "Verdict",
    "verify_log",
    "verify_ranges",
]


class RangePlan(Protocol):
    """Where the ranges of a log come from (in memory, or the database's ranges in parallel)."""

    def results(
        self, origin: str, base: MerkleFrontier, check_sizes: set[int], request_id: str | None
    ) -> Iterator[tuple[RangeResult, int | None]]:
        """The checked ranges after ``base``, in log order, each with the number of rows it
        was planned to hold (None: any)."""
        ...

    def high_nodes(self, start: int) -> NodeLevels | None:
        """Stored nodes above the levels the ranges check, of subtrees ending after ``start``
        (None: the ranges check every level)."""
        ...

    def single(self) -> RangePlan:
        """The same records as one range (after a range held another number of rows)."""
        ...


class _MemoryPlan:
    """Records and nodes given as values: one range."""

    def __init__(
        self,
        records: Iterable[StoredRecord],
        nodes: NodeLevels | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.records, self.nodes, self.progress = records, nodes, progress

    def results(
        self, origin: str, base: MerkleFrontier, check_sizes: set[int], request_id: str | None
    ) -> Iterator[tuple[RangeResult, int | None]]:
        rows: Iterator[RecordRow] = (
            (r.seq, r.kind, r.request_id, r.req_seq, r.ts, r.tenant, r.body, r.leaf, r.payload)
            for r in self.records
        )
        yield (
            scan_range(
                origin,
                rows,
                start=base.size,
                base=base,
                check_sizes=check_sizes,
                nodes=self.nodes,
                node_max=None,
                request_id=request_id,
                progress=self.progress,
            ),
            None,
        )

    def high_nodes(self, start: int) -> NodeLevels | None:
        return None

    def single(self) -> RangePlan:
        return self


def verify_log(
    *,
    origin: str,
    records: Iterable[StoredRecord],
    checkpoints: Iterable[str | CheckpointRow] = (),
    verifiers: Iterable[Verifier],
    witnessed: str | Sequence[str] | None = None,
    nodes: NodeLevels | None = None,
    request_id: str | None = None,
    max_pending_ns: int | None = None,
    now_ns: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify one log; see the module docstring for the checks. Never raises on bad data.

    ``witnessed``: checkpoint notes kept outside the database (every one a witness kept, and the
    caller's): the log must contain each of their trees. ``nodes``: the stored Merkle nodes (None
    skips that check). ``request_id``: collect the seqs of that request (``request_seqs``).
    ``max_pending_ns``/``now_ns``: records not covered by a trusted checkpoint whose ``ts`` is
    older than ``now_ns - max_pending_ns`` are a failure (``tail.unsigned``).
    """
    report, _ = verify_ranges(
        origin=origin,
        plan=_MemoryPlan(records, nodes, progress),
        checkpoints=checkpoints,
        verifiers=verifiers,
        witnessed=witnessed,
        request_id=request_id,
        max_pending_ns=max_pending_ns,
        now_ns=now_ns,
    )
    if progress is not None:
        progress(report.size)
    return report


def verify_ranges(
    *,
    origin: str,
    plan: RangePlan,
    checkpoints: Iterable[str | CheckpointRow] = (),
    verifiers: Iterable[Verifier],
    witnessed: str | Sequence[str] | None = None,
    request_id: str | None = None,
    max_pending_ns: int | None = None,
    now_ns: int | None = None,
    resume: LogState | None = None,
) -> tuple[Report, LogState]:
    """:func:`verify_log` over the ranges of ``plan``, after ``resume`` (the state of the log
    after its records ``[0, resume.size)``, checked before: they are not read again; the roots
    in ``resume.roots`` stand for the trees at those sizes). Returns the report and the state of
    the log after its last record."""
    trusted = list(verifiers)
    report = Report(log=origin)
    out = FindingCollector(report)
    stored_roots = open_checkpoints(origin, checkpoints, trusted, out)
    kept = open_kept(origin, witnessed, trusted, out)
    check_sizes = set(stored_roots) | {cp.size for cp in kept}
    start = LogState() if resume is None else resume
    report.resumed_from = None if resume is None else resume.size
    try:
        stitch = _stitch(origin, plan, copy.deepcopy(start), check_sizes, request_id)
    except Misaligned:
        # a copy again: ``resume`` is the caller's saved state, kept as it is when this run fails
        stitch = _stitch(origin, plan.single(), copy.deepcopy(start), check_sizes, request_id)
    state = stitch.finish()
    for finding in stitch.out.report.findings:
        out.add(finding.index, finding.code, finding.expected, finding.actual, finding.message)
    out.absorb([], stitch.out.report.suppressed)
    size = state.size
    matched = check_anchors(stored_roots, kept, state.roots, size, out)
    report.size, report.root, report.request_seqs = size, state.frontier.root(), stitch.seqs
    report.anchored_size = max(matched, default=None)
    report.sealed, report.erasures = dict(state.sealed), list(state.erasures)
    report.admin, report.starts = list(state.admin), dict(state.starts)
    check_pending(report, state.first_ts, max_pending_ns, now_ns, out)
    report.counts = stitch.counts(sum(len(v) for v in stored_roots.values()))
    return report, state


def _stitch(
    origin: str,
    plan: RangePlan,
    state: LogState,
    check_sizes: set[int],
    request_id: str | None,
) -> Stitcher:
    """Join the ranges of ``plan`` after ``state``; findings go to a report of their own (a
    misaligned plan is dropped whole)."""
    out = FindingCollector(Report(log=origin))
    high = plan.high_nodes(state.size)
    node_check = None if high is None else NodeCheck(high, out)
    stitch = Stitcher(out, state, high_nodes=node_check)
    for result, planned in plan.results(origin, state.frontier, check_sizes, request_id):
        stitch.add(result, planned=planned)
    if node_check is not None:
        node_check.finish(stitch.size)
    return stitch
