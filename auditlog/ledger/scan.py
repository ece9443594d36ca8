"""The per-record checks of one range of a log (docs/FORMAT.md section 7, steps 1 to 7).

A range is a run of consecutive records, ``[start, start + number of rows)`` by position. It is
checked knowing nothing of the records before it, except, optionally, the Merkle frontier at
``start`` (``base``): what depends on earlier records is left in the :class:`RangeResult` for
:mod:`auditlog.ledger.stitch` to join, in log order, with the ranges before it. So a log can be
checked as one range, as many ranges in parallel processes, or from a saved state onwards.

Without ``base`` the range must start at a multiple of 2^``node_max`` and hold at most that many
records: its Merkle frontier is then a list of perfect subtrees that the stitcher appends to the
frontier at ``start``, and the tree's roots at the checkpoint sizes inside the range are kept as
snapshots of the range's own frontier. Stored nodes of levels up to ``node_max`` whose subtrees
the range completes are checked here; those above are returned (``high_nodes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import AuditlogError
from auditlog.ledger.chain import ChainChecker
from auditlog.ledger.hashes import LEAF_HASH_PREFIX
from auditlog.ledger.header_parse import parse_header
from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.node_check import NodeCheck, NodeLevels
from auditlog.ledger.record_findings import check_position, column_findings, payload_finding
from auditlog.ledger.report import Finding, FindingCode, FindingCollector, Report

__all__ = ["PROGRESS_EVERY", "RangeResult", "RecordRow", "scan_range"]

#: ``progress`` is called after every this many records.
PROGRESS_EVERY = 10_000

#: One stored record: (seq, kind, request_id, req_seq, ts, tenant, body, leaf, payload).
RecordRow = tuple[int, str, str | None, int | None, int, str | None, bytes, bytes, bytes | None]


@dataclass(slots=True)
class RangeResult:
    """What one range found, and what it leaves to the ranges around it (picklable)."""

    start: int
    num_rows: int
    based: bool  # the frontier continues the log's (True) or is the range's own (False)
    frontier: MerkleFrontier
    findings: list[Finding]
    suppressed: dict[FindingCode, int]
    chains: ChainChecker
    roots: dict[int, bytes] = field(default_factory=dict)  # based: size -> root
    snapshots: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)  # not based
    high_nodes: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    first_ts: dict[int, int] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    sealed: dict[str, tuple[int, str]] = field(default_factory=dict)
    erasures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    admin: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    num_payloads: int = 0
    num_absent: int = 0


def scan_range(
    origin: str,
    rows: Iterable[RecordRow],
    *,
    start: int,
    base: MerkleFrontier | None,
    check_sizes: set[int],
    nodes: NodeLevels | None,
    node_max: int | None,
    request_id: str | None,
    progress: Callable[[int], None] | None = None,
) -> RangeResult:
    """Check the records ``rows`` of ``origin``, the first at position ``start``."""
    report = Report(log=origin)
    out = FindingCollector(report)
    chains = ChainChecker(out.add, ranged=True)
    frontier = MerkleFrontier() if base is None else base.copy()
    result = RangeResult(start, 0, base is not None, frontier, report.findings, {}, chains)
    node_check = None if nodes is None else NodeCheck(nodes, out)
    _Loop(origin, out, result, node_check, node_max, check_sizes, request_id).run(rows, progress)
    if node_check is not None:
        node_check.finish(start + result.num_rows)
    result.suppressed = report.suppressed
    result.chains.report = _unset_report  # a bound method of the collector does not pickle
    return result


def _unset_report(*_: object) -> None:
    raise AssertionError("a range's chain checker reports through the stitcher")


class _Loop:
    """The loop over the records of one range."""

    def __init__(
        self,
        origin: str,
        out: FindingCollector,
        result: RangeResult,
        node_check: NodeCheck | None,
        node_max: int | None,
        check_sizes: set[int],
        request_id: str | None,
    ) -> None:
        self.origin, self.out, self.result, self.node_check = origin, out, result, node_check
        self.node_max = node_max
        self.check_sizes, self.request_id = check_sizes, request_id

    def _nodes(self, index: int, new_nodes: list[tuple[int, int, bytes]]) -> None:
        """Check the stored nodes a leaf completed; keep those above ``node_max``."""
        result, node_max = self.result, self.node_max
        if not result.based:  # the range's own tree: indices count from the range's start
            start = result.start
            new_nodes = [(level, (start >> level) + i, d) for level, i, d in new_nodes]
        if node_max is not None:
            result.high_nodes.extend((index, lv, i, d) for lv, i, d in new_nodes if lv > node_max)
            new_nodes = [node for node in new_nodes if node[0] <= node_max]
        if self.node_check is not None and new_nodes:
            self.node_check.check(index, new_nodes)

    def _sizes(self, index: int, ts: int) -> None:
        """At a checkpoint size: the root (or the range's frontier) and the ts there."""
        result = self.result
        if index in self.check_sizes:
            result.first_ts[index] = ts
        size = index + 1
        if size in self.check_sizes:
            if result.based:
                result.roots[size] = result.frontier.root()
            else:
                result.snapshots[size] = result.frontier.subtrees()

    def run(self, rows: Iterable[RecordRow], progress: Callable[[int], None] | None) -> None:
        result, out, add, chains = self.result, self.out, self.out.add, self.result.chains
        frontier = result.frontier
        append_leaf, check_sizes, sha256 = frontier.append, self.check_sizes, hashlib.sha256
        origin, wanted, start = self.origin, self.request_id, result.start
        index = expected_seq = start
        if start == 0:
            check_sizes = check_sizes | {0}
        num_payloads = num_absent = 0
        for seq, kind, rid, req_seq, ts, tenant, body, stored_leaf, payload in rows:
            # 1. leaf = SHA-256(0x00 || record bytes), RFC 9162 2.1.1; the tree uses this one
            leaf = sha256(LEAF_HASH_PREFIX + body).digest()
            new_nodes = append_leaf(leaf)
            if new_nodes:
                self._nodes(index, new_nodes)
            if index in check_sizes or index + 1 in check_sizes:
                self._sizes(index, ts)
            if progress is not None and (index + 1) % PROGRESS_EVERY == 0:
                progress(index + 1)
            if stored_leaf != leaf:
                add(
                    index,
                    FindingCode.LEAF_MISMATCH,
                    leaf.hex(),
                    stored_leaf.hex(),
                    f"record {index}: stored leaf hash differs from SHA-256(0x00 || body)",
                )
            # 2. canonical, well-typed header
            try:
                h = parse_header(body)
            except AuditlogError as exc:
                add(
                    index,
                    FindingCode.HEADER_INVALID,
                    "a valid header",
                    body[:80],
                    f"record {index}: {exc}",
                )
                expected_seq += 1
                index += 1
                continue
            # 3. log and position; 4. indexed columns; 5. payload digest
            if h["seq"] == expected_seq and h["log"] == origin:
                expected_seq += 1
            else:
                expected_seq = check_position(index, h, origin, expected_seq, out)
            if (
                seq != h["seq"]
                or kind != h["kind"]
                or rid != h["request_id"]
                or req_seq != h["req_seq"]
                or ts != h["ts"]
                or tenant != h.get("tenant")
            ):
                column_findings(index, (seq, kind, rid, req_seq, ts, tenant), h, out)
            digest = h["payload"]
            if payload is not None:
                num_payloads += 1
                if digest is None or sha256(payload).hexdigest() != digest:
                    payload_finding(index, digest, payload, out)
            elif digest is not None:
                num_absent += payload_finding(index, digest, payload, out)
            # 6., 7. chains, counts, steps
            chains.check(index, h, leaf, payload)
            if "enc" in h or h["kind"] in _NOTED:  # sealed payloads, erasures, holds: C15, C16
                self._note_keys(index, h)
            if wanted is not None and h["request_id"] == wanted:
                result.seqs.append(h["seq"])
            index += 1
        result.num_rows = index - start
        result.num_payloads, result.num_absent = num_payloads, num_absent

    def _note_keys(self, index: int, h: dict[str, Any]) -> None:
        """Remember what the data-key check (:mod:`auditlog.ledger.shred`) needs."""
        if h["kind"] == "erasure":
            self.result.erasures.append((index, h))
        elif h["kind"] == "admin":  # holds and releases (C15: auditlog.ledger.held_erasures)
            self.result.admin.append((index, h))
        elif h["kind"] == "request.start":
            self.result.sealed[h["request_id"]] = (index, h["enc"]["dek"])
            start = {k: h.get(k) for k in _SCOPE_FIELDS}
            self.result.starts[h["request_id"]] = {**start, "kek": h["enc"]["kek"]}


#: Kinds remembered for the checks after the pass (C15, C16), besides sealed ``request.start``.
_NOTED = frozenset({"erasure", "admin"})
#: The ``request.start`` members a hold's scope reads (auditlog.ledger.held_erasures).
_SCOPE_FIELDS = ("request_id", "tenant", "principal", "ts")
