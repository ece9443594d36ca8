"""Pure streaming verifier of one log (C8, C10, C11; docs/FORMAT.md section 6).

Input is values, never a database: the records as stored (header bytes, leaf column, payload and
the indexed column copies), the stored checkpoint notes, the trusted public keys and optionally
the newest checkpoint kept by a witness. Output is a :class:`Report`. Checks, in order, per record
at position i (records MUST be given in ``seq`` order):

1. leaf column = SHA-256(0x00 || body) (RFC 9162 2.1.1);
2. the body is a canonical, well-typed header (:func:`~auditlog.ledger.records.parse_header`);
3. ``log`` = the origin; header ``seq`` = i (else a record was deleted, inserted or reordered);
4. every indexed column equals its header field (an edited index column hides nothing);
5. SHA-256(stored payload) = header ``payload`` (a payload absent under a digest is a warning:
   erasure may delete ciphertext);
6. request chains: ``req_seq`` gap-free from 0, ``prev`` = leaf of the request's previous record,
   ``request.start`` first, nothing after ``request.end``, a request id never used by two
   chains; chains left open are warnings;
7. step manifests: the ``tokens`` records of step s (which MUST precede the manifest of s) name
   each request once, with the manifest's counts (C11);

and per log: every stored checkpoint is signed by a trusted key and its root equals the root
recomputed at its size; every witnessed checkpoint's tree is contained in the log (else the
database was rolled back or rewritten, C10). Memory is O(requests + open steps + log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from auditlog.errors import AuditlogError
from auditlog.ledger.checkpoint import Checkpoint, open_checkpoint
from auditlog.ledger.hashes import LEAF_HASH_PREFIX
from auditlog.ledger.merkle import MerkleFrontier
from auditlog.ledger.note import Verifier
from auditlog.ledger.records import parse_header
from auditlog.ledger.report import (
    MAX_FINDINGS_PER_CODE,
    Finding,
    FindingCode,
    FindingCollector,
    Report,
    Severity,
    StoredRecord,
)

__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "Finding",
    "FindingCode",
    "Report",
    "Severity",
    "StoredRecord",
    "verify_log",
]

#: ``progress`` is called after every this many records.
PROGRESS_EVERY = 10_000


def _open_checkpoints(
    origin: str, notes: Iterable[str], verifiers: list[Verifier], out: FindingCollector
) -> dict[int, list[tuple[int, bytes]]]:
    """Signature-checked stored checkpoints: size -> [(note number, root)]."""
    by_size: dict[int, list[tuple[int, bytes]]] = {}
    for number, note in enumerate(notes):
        try:
            cp = open_checkpoint(note, verifiers, origin=origin)
        except AuditlogError as exc:
            out.add(
                None,
                FindingCode.CHECKPOINT_INVALID,
                "a checkpoint signed by a trusted key",
                f"stored checkpoint #{number}",
                f"stored checkpoint #{number}: {exc}",
            )
            continue
        by_size.setdefault(cp.size, []).append((number, cp.root))
    return by_size


def _check_manifest(
    index: int, step: int, batch: list[list[Any]], seen: dict[str, int], out: FindingCollector
) -> None:
    """C11: the step's tokens records are exactly the manifest's batch entries."""
    expected: dict[str, int] = {rid: n for rid, n in batch}  # pairs checked by parse_header
    if seen == expected:
        return
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    wrong = sorted(r for r in set(seen) & set(expected) if seen[r] != expected[r])
    out.add(
        index,
        FindingCode.STEP_MISMATCH,
        expected,
        seen,
        f"record {index}: step {step} manifest does not match its tokens records: "
        f"missing {missing}, not in manifest {extra}, different counts {wrong}",
    )


def verify_log(
    *,
    origin: str,
    records: Iterable[StoredRecord],
    checkpoints: Iterable[str] = (),
    verifiers: Iterable[Verifier],
    witnessed: str | Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify one log; see the module docstring for the checks. Never raises on bad data.

    ``witnessed`` is one checkpoint note kept outside the database, or several (every note a
    witness kept: the log must contain each of their trees, not only the newest).
    """
    trusted = list(verifiers)
    report = Report(log=origin)
    out = FindingCollector(report)
    add = out.add
    expected_roots = _open_checkpoints(origin, checkpoints, trusted, out)
    notes = [witnessed] if isinstance(witnessed, str) else list(witnessed or ())
    witness_cps: list[Checkpoint] = []
    for note in notes:
        try:
            witness_cps.append(open_checkpoint(note, trusted, origin=origin))
        except AuditlogError as exc:
            add(
                None,
                FindingCode.WITNESS_INVALID,
                "a witnessed checkpoint signed by a trusted key",
                "unverifiable note",
                f"witnessed checkpoint: {exc}",
            )
    check_sizes = set(expected_roots) | {cp.size for cp in witness_cps}
    witness_roots: dict[int, bytes] = {}

    frontier = MerkleFrontier()
    append_leaf = frontier.append
    sha256 = hashlib.sha256
    chains: dict[str, list[object]] = {}  # request_id -> [next req_seq, leaf hex of last record]
    open_steps: dict[int, tuple[int, dict[str, int]]] = {}  # step -> (first index, {rid: n})
    ended_ids: set[str] = set()  # a request id is used once per log (O(requests) memory)
    num_started = num_ended = num_steps = num_absent = num_tokens = 0
    expected_seq = 0
    index = -1
    for index, rec in enumerate(records):
        body = rec.body
        # 1. leaf = SHA-256(0x00 || record bytes), RFC 9162 2.1.1; the tree uses the recomputed one
        leaf = sha256(LEAF_HASH_PREFIX + body).digest()
        append_leaf(leaf)
        if frontier.size in check_sizes:
            root = frontier.root()
            for number, cp_root in expected_roots.get(frontier.size, ()):
                if cp_root != root:
                    add(
                        index,
                        FindingCode.CHECKPOINT_ROOT,
                        cp_root.hex(),
                        root.hex(),
                        f"stored checkpoint #{number} at size {frontier.size} does not match the "
                        f"records: expected root {cp_root.hex()}, computed {root.hex()}",
                    )
            witness_roots[frontier.size] = root
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
        # 3. log and position
        if h["log"] != origin:
            add(
                index,
                FindingCode.LOG_MISMATCH,
                origin,
                h["log"],
                f"record {index}: belongs to log {h['log']!r}, expected {origin!r}",
            )
        seq = h["seq"]
        if seq != expected_seq:
            why = (
                "a record is missing before it (deleted)"
                if seq > expected_seq
                else ("a record was inserted or reordered")
            )
            add(
                index,
                FindingCode.SEQ_MISMATCH,
                expected_seq,
                seq,
                f"record {index}: expected seq {expected_seq}, got {seq}: {why}",
            )
        if seq >= expected_seq:  # resynchronise after a gap; a late seq changes nothing
            expected_seq = seq + 1
        # 4. indexed columns are copies of header fields
        kind, rid, req_seq = h["kind"], h["request_id"], h["req_seq"]
        if (
            rec.seq != seq
            or rec.kind != kind
            or rec.request_id != rid
            or rec.req_seq != req_seq
            or rec.ts != h["ts"]
            or rec.tenant != h.get("tenant")
        ):
            for name, column, value in (
                ("seq", rec.seq, seq),
                ("kind", rec.kind, kind),
                ("request_id", rec.request_id, rid),
                ("req_seq", rec.req_seq, req_seq),
                ("ts", rec.ts, h["ts"]),
                ("tenant", rec.tenant, h.get("tenant")),
            ):
                if column != value:
                    add(
                        index,
                        FindingCode.COLUMN_MISMATCH,
                        value,
                        column,
                        f"record {index}: index column {name} is {column!r}, header says {value!r}",
                    )
        # 5. payload digest
        digest, payload = h["payload"], rec.payload
        if digest is None:
            if payload is not None:
                add(
                    index,
                    FindingCode.PAYLOAD_UNEXPECTED,
                    None,
                    len(payload),
                    f"record {index}: payload stored but the header commits to none",
                )
        elif payload is None:
            num_absent += 1
            add(
                index,
                FindingCode.PAYLOAD_ABSENT,
                digest,
                None,
                f"record {index}: payload absent (erased or deleted); header digest {digest}",
            )
        elif sha256(payload).hexdigest() != digest:
            add(
                index,
                FindingCode.PAYLOAD_MISMATCH,
                digest,
                sha256(payload).hexdigest(),
                f"record {index}: payload digest mismatch: header {digest}, stored bytes "
                f"{sha256(payload).hexdigest()}",
            )
        # 6. request chains
        if rid is not None:
            chain = chains.get(rid)
            if kind == "request.start":
                num_started += 1
                if rid in ended_ids:
                    add(
                        index,
                        FindingCode.CHAIN_RESTARTED,
                        "a new request id",
                        rid,
                        f"record {index}: request id {rid!r} is used again after its chain "
                        f"ended: two requests would share one trail",
                    )
                if chain is not None:
                    add(
                        index,
                        FindingCode.CHAIN_RESTARTED,
                        "a new request id",
                        rid,
                        f"record {index}: request {rid!r} started again while its chain is open",
                    )
                chains[rid] = [1, leaf.hex()]
            elif chain is None:
                add(
                    index,
                    FindingCode.CHAIN_NOT_OPEN,
                    "an open request",
                    rid,
                    f"record {index}: {kind} for request {rid!r}, which is not open (its start "
                    f"is missing, or it already ended)",
                )
            else:
                if req_seq != chain[0]:
                    add(
                        index,
                        FindingCode.CHAIN_REQ_SEQ,
                        chain[0],
                        req_seq,
                        f"record {index}: request {rid!r} expected req_seq {chain[0]}, got "
                        f"{req_seq}: its chain is cut",
                    )
                if h["prev"] != chain[1]:
                    add(
                        index,
                        FindingCode.CHAIN_PREV,
                        chain[1],
                        h["prev"],
                        f"record {index}: request {rid!r} prev does not match the leaf of its "
                        f"previous record: expected {chain[1]}, got {h['prev']}",
                    )
                if kind == "request.end":
                    num_ended += 1
                    del chains[rid]
                    ended_ids.add(rid)
                else:
                    chain[0] = req_seq + 1
                    chain[1] = leaf.hex()
            # 7a. tokens records accumulate per step until its manifest
            if kind == "tokens":
                pending = open_steps.get(h["step"])
                if pending is None:
                    pending = open_steps[h["step"]] = (index, {})
                seen = pending[1]
                if rid in seen:
                    add(
                        index,
                        FindingCode.STEP_MISMATCH,
                        "one tokens record per request",
                        rid,
                        f"record {index}: second tokens record of {rid!r} in step {h['step']}",
                    )
                seen[rid] = h["n"]
                num_tokens += h["n"]
        elif kind == "step":
            # 7b. the manifest closes its step
            num_steps += 1
            _, seen = open_steps.pop(h["step"], (index, {}))
            _check_manifest(index, h["step"], h["batch"], seen, out)

    size = index + 1
    for rid, (next_req_seq, _) in chains.items():
        add(
            None,
            FindingCode.CHAIN_OPEN,
            "request.end",
            f"{next_req_seq} records",
            f"request {rid!r} has no request.end (open chain of {next_req_seq} records)",
        )
    for step, (first, _) in open_steps.items():
        add(
            first,
            FindingCode.STEP_UNRECONCILED,
            f"a manifest of step {step}",
            "none",
            f"record {first}: tokens records of step {step} have no step manifest after them",
        )
    for cp_size, entries in sorted(expected_roots.items()):
        if cp_size > size:
            for number, _ in entries:
                add(
                    size,
                    FindingCode.CHECKPOINT_TRUNCATED,
                    cp_size,
                    size,
                    f"stored checkpoint #{number} commits to {cp_size} records, the log has "
                    f"{size}: records {size}..{cp_size - 1} are missing (log truncated)",
                )
    for witness_cp in witness_cps:
        if witness_cp.size > size:
            add(
                size,
                FindingCode.WITNESS_ROLLBACK,
                witness_cp.size,
                size,
                f"witnessed checkpoint commits to {witness_cp.size} records, the log has {size}: "
                f"the database was rolled back or truncated",
            )
        elif witness_cp.size == 0:
            pass  # the empty tree is contained in every log
        elif witness_roots.get(witness_cp.size) != witness_cp.root:
            add(
                witness_cp.size - 1,
                FindingCode.WITNESS_REWRITE,
                witness_cp.root.hex(),
                witness_roots.get(witness_cp.size, b"").hex(),
                f"witnessed checkpoint at size {witness_cp.size} does not match the records: "
                f"the database was rolled back or rewritten",
            )
    if progress is not None:
        progress(size)
    report.size = size
    report.root = frontier.root()
    report.counts = {
        "records": size,
        "requests_started": num_started,
        "requests_ended": num_ended,
        "open_chains": len(chains),
        "steps": num_steps,
        "tokens": num_tokens,
        "checkpoints": sum(len(v) for v in expected_roots.values()),
        "payloads_absent": num_absent,
    }
    return report
