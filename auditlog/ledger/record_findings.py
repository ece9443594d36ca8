"""The findings of one record whose position, index columns or payload disagree with its header
(docs/FORMAT.md section 7, steps 3 to 5), for :mod:`auditlog.ledger.scan`: its loop checks the
common case inline and calls these only on a mismatch."""

from __future__ import annotations

import hashlib
from typing import Any

from auditlog.ledger.report import FindingCode, FindingCollector

__all__ = ["check_position", "column_findings", "payload_finding"]


def check_position(
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


def column_findings(
    index: int, columns: tuple[Any, ...], h: dict[str, Any], out: FindingCollector
) -> None:
    """Report each index column that differs from the header field it copies."""
    names = ("seq", "kind", "request_id", "req_seq", "ts", "tenant")
    values = (h["seq"], h["kind"], h["request_id"], h["req_seq"], h["ts"], h.get("tenant"))
    for name, column, value in zip(names, columns, values, strict=True):
        if column != value:
            out.add(
                index,
                FindingCode.COLUMN_MISMATCH,
                value,
                column,
                f"record {index}: index column {name} is {column!r}, header says {value!r}",
            )


def payload_finding(
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
