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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from auditlog.errors import AuditlogError
from auditlog.ledger.anchors import check_anchors, check_pending, open_checkpoints, open_kept
from auditlog.ledger.chain import ChainChecker
from auditlog.ledger.hashes import EMPTY_ROOT, LEAF_HASH_PREFIX
from auditlog.ledger.merkle import MerkleFrontier
from auditlog.ledger.node_check import NodeCheck, NodeLevels
from auditlog.ledger.note import Verifier
from auditlog.ledger.records import parse_header
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

__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "CheckpointRow",
    "Finding",
    "FindingCode",
    "Report",
    "Severity",
    "StoredRecord",
    "Verdict",
    "verify_log",
]

#: ``progress`` is called after every this many records.
PROGRESS_EVERY = 10_000


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
    trusted = list(verifiers)
    report = Report(log=origin)
    out = FindingCollector(report)
    stored_roots = open_checkpoints(origin, checkpoints, trusted, out)
    kept = open_kept(origin, witnessed, trusted, out)
    scan = _Scan(origin, out, set(stored_roots) | {cp.size for cp in kept}, nodes, request_id)
    scan.run(records, progress)
    scan.chains.finish()
    if scan.node_check is not None:
        scan.node_check.finish(scan.size)
    matched = check_anchors(stored_roots, kept, scan.roots, scan.size, out)
    report.size, report.root, report.request_seqs = scan.size, scan.frontier.root(), scan.seqs
    report.anchored_size = max(matched, default=None)
    check_pending(report, scan.first_ts, max_pending_ns, now_ns, out)
    report.counts = scan.counts(sum(len(v) for v in stored_roots.values()))
    if progress is not None:
        progress(scan.size)
    return report


# -- records ------------------------------------------------------------------------------------


class _Scan:
    """One pass over the records: per-record checks, the tree, the chains."""

    def __init__(
        self,
        origin: str,
        out: FindingCollector,
        check_sizes: set[int],
        nodes: NodeLevels | None,
        request_id: str | None,
    ) -> None:
        self.origin, self.out, self.check_sizes = origin, out, check_sizes
        self.request_id = request_id
        self.frontier = MerkleFrontier()
        self.chains = ChainChecker(out.add)
        self.node_check = None if nodes is None else NodeCheck(nodes, out)
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}  # size -> root, at the check_sizes
        self.first_ts: dict[int, int] = {}  # index -> ts, at 0 and the sizes of check_sizes
        self.seqs: list[int] = []
        self.size = self.num_absent = self.num_payloads = 0

    def run(self, records: Iterable[StoredRecord], progress: Callable[[int], None] | None) -> None:
        out, add, chains = self.out, self.out.add, self.chains
        append_leaf, check_sizes, frontier = self.frontier.append, self.check_sizes, self.frontier
        node_check, sha256, wanted = self.node_check, hashlib.sha256, self.request_id
        origin, expected_seq, num_payloads, num_absent = self.origin, 0, 0, 0
        for index, rec in enumerate(records):
            body = rec.body
            # 1. leaf = SHA-256(0x00 || record bytes), RFC 9162 2.1.1; the tree uses this one
            leaf = sha256(LEAF_HASH_PREFIX + body).digest()
            new_nodes = append_leaf(leaf)
            if new_nodes and node_check is not None:
                node_check.check(index, new_nodes)
            if index in check_sizes or index == 0:
                self.first_ts[index] = rec.ts
            if frontier.size in check_sizes:
                self.roots[frontier.size] = frontier.root()
            if progress is not None and frontier.size % PROGRESS_EVERY == 0:
                progress(frontier.size)
            if rec.leaf != leaf:
                add(
                    index,
                    FindingCode.LEAF_MISMATCH,
                    leaf.hex(),
                    rec.leaf.hex(),
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
                continue
            # 3. log and position; 4. indexed columns; 5. payload digest
            if h["seq"] == expected_seq and h["log"] == origin:
                expected_seq += 1
            else:
                expected_seq = _check_position(index, h, origin, expected_seq, out)
            if (
                rec.seq != h["seq"]
                or rec.kind != h["kind"]
                or rec.request_id != h["request_id"]
                or rec.req_seq != h["req_seq"]
                or rec.ts != h["ts"]
                or rec.tenant != h.get("tenant")
            ):
                _column_findings(index, rec, h, out)
            digest, payload = h["payload"], rec.payload
            if payload is not None:
                num_payloads += 1
                if digest is None or sha256(payload).hexdigest() != digest:
                    _payload_finding(index, digest, payload, out)
            elif digest is not None:
                num_absent += _payload_finding(index, digest, payload, out)
            # 6., 7. chains, counts, steps
            chains.check(index, h, leaf, payload)
            if "enc" in h or h["kind"] in _NOTED:  # sealed payloads, erasures, holds: C15, C16
                self._note_keys(index, h)
            if wanted is not None and h["request_id"] == wanted:
                self.seqs.append(h["seq"])
        self.size = frontier.size
        self.num_payloads, self.num_absent = num_payloads, num_absent

    def _note_keys(self, index: int, h: dict[str, Any]) -> None:
        """Remember what the data-key check (:mod:`auditlog.ledger.shred`) needs."""
        report = self.out.report
        if h["kind"] == "erasure":
            report.erasures.append((index, h))
        elif h["kind"] == "admin":  # holds and releases (C15: auditlog.ledger.held_erasures)
            report.admin.append((index, h))
        elif h["kind"] == "request.start":
            report.sealed[h["request_id"]] = (index, h["enc"]["dek"])
            report.starts[h["request_id"]] = {k: h.get(k) for k in _SCOPE_FIELDS}

    def counts(self, num_checkpoints: int) -> dict[str, int]:
        c = self.chains
        return {
            "records": self.size,
            "requests_started": c.num_started,
            "requests_ended": c.num_ended,
            "open_chains": len(c.chains),
            "steps": c.num_steps,
            "tokens": c.num_tokens,
            "checkpoints": num_checkpoints,
            "payloads": self.num_payloads,
            "payloads_absent": self.num_absent,
        }


#: Kinds remembered for the checks after the pass (C15, C16), besides sealed ``request.start``.
_NOTED = frozenset({"erasure", "admin"})
#: The ``request.start`` members a hold's scope reads (auditlog.ledger.held_erasures).
_SCOPE_FIELDS = ("request_id", "tenant", "principal", "ts")


def _check_position(
    index: int, h: dict[str, Any], origin: str, expected_seq: int, out: FindingCollector
) -> int:
    """Check ``log`` and ``seq``; returns the seq expected next (resynchronised after a gap)."""
    if h["log"] != origin:
        out.add(
            index,
            FindingCode.LOG_MISMATCH,
            origin,
            h["log"],
            f"record {index}: belongs to log {h['log']!r}, expected {origin!r}",
        )
    seq: int = h["seq"]
    if seq != expected_seq:
        why = (
            "a record is missing before it (deleted)"
            if seq > expected_seq
            else "a record was inserted or reordered"
        )
        out.add(
            index,
            FindingCode.SEQ_MISMATCH,
            expected_seq,
            seq,
            f"record {index}: expected seq {expected_seq}, got {seq}: {why}",
        )
    # resynchronise after a gap; a late (inserted or reordered) seq changes nothing
    return seq + 1 if seq >= expected_seq else expected_seq


def _column_findings(
    index: int, rec: StoredRecord, h: dict[str, Any], out: FindingCollector
) -> None:
    for name, column, value in (
        ("seq", rec.seq, h["seq"]),
        ("kind", rec.kind, h["kind"]),
        ("request_id", rec.request_id, h["request_id"]),
        ("req_seq", rec.req_seq, h["req_seq"]),
        ("ts", rec.ts, h["ts"]),
        ("tenant", rec.tenant, h.get("tenant")),
    ):
        if column != value:
            out.add(
                index,
                FindingCode.COLUMN_MISMATCH,
                value,
                column,
                f"record {index}: index column {name} is {column!r}, header says {value!r}",
            )


def _payload_finding(
    index: int, digest: str | None, payload: bytes | None, out: FindingCollector
) -> int:
    """Report a payload that does not match its header's digest; 1 if it is absent."""
    if digest is None:
        size = 0 if payload is None else len(payload)
        out.add(
            index,
            FindingCode.PAYLOAD_UNEXPECTED,
            None,
            size,
            f"record {index}: payload stored but the header commits to none",
        )
        return 0
    if payload is None:
        out.add(
            index,
            FindingCode.PAYLOAD_ABSENT,
            digest,
            None,
            f"record {index}: payload absent; header digest {digest} (deleted: no signed "
            f"erasure record accounts for it)",
        )
        return 1
    actual = hashlib.sha256(payload).hexdigest()
    out.add(
        index,
        FindingCode.PAYLOAD_MISMATCH,
        digest,
        actual,
        f"record {index}: payload digest mismatch: header {digest}, stored bytes {actual}",
    )
    return 0
