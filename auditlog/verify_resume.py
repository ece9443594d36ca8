"""What a run resumed from a saved state checks of the rows it does not read (docs/TRUST.md).

The saved state (:mod:`auditlog.verify_state`) stands for the records ``[0, S)`` a previous run
checked, by its Merkle frontier (root R at size S). Before the records after S are checked:

- the stored tree at S, computed from the stored nodes (O(log S) reads), must have root R: a
  prefix rewritten or truncated since, nodes and all, is caught here (``state.prefix``);
- the root at each checkpoint size below S that the state does not hold is taken from the
  stored nodes and proven by an RFC 9162 consistency proof to R (else it stays unknown and the
  checkpoint fails as not matching the records);

and after: the ``records`` and ``nodes`` rows of the log must number exactly what the verified
tree holds (a row added below S, or deleted there, ``rows.unread``); payload rows are counted
against the state's count by the usual check.
"""

from __future__ import annotations

from sqlalchemy import Connection

from auditlog.errors import AuditlogError
from auditlog.ledger.merkle_proofs import consistency_proof
from auditlog.ledger.merkle_tree import NODE_LEVEL_STRIDE, root_hash
from auditlog.ledger.merkle_verify import verify_consistency
from auditlog.ledger.report import FindingCode, FindingCollector, Report
from auditlog.ledger.stitch import LogState
from auditlog.store import StoredNodeSource

__all__ = ["check_prefix", "check_unread_rows", "prove_old_roots"]


def check_prefix(conn: Connection, log_id: int, state: LogState) -> str | None:
    """Why the stored tree at the state's size is not the state's tree (None: it is)."""
    size, root = state.size, state.frontier.root()
    if size == 0:
        return None
    try:
        stored = root_hash(size, StoredNodeSource(conn, log_id))
    except AuditlogError as exc:
        return f"the stored tree of the first {size} records cannot be read: {exc}"
    if stored != root:
        return (
            f"the stored tree of the first {size} records has root {stored.hex()}, the saved "
            f"state {root.hex()}: records or nodes below the saved state were rewritten"
        )
    return None


def prove_old_roots(conn: Connection, log_id: int, state: LogState, sizes: set[int]) -> None:
    """Add to ``state.roots`` the root at each of ``sizes`` below the state's size, proven
    consistent with the state's root; a size whose proof fails stays unknown."""
    source = StoredNodeSource(conn, log_id)
    top, top_root = state.size, state.frontier.root()
    for size in sorted(sizes):
        if not 0 < size < top or size in state.roots:
            continue
        try:
            root = root_hash(size, source)
            verify_consistency(size, top, consistency_proof(size, top, source), root, top_root)
        except AuditlogError:
            continue
        state.roots[size] = root


def num_nodes(size: int) -> int:
    """Stored nodes of a tree of ``size`` leaves: its complete subtrees at persisted levels."""
    total, level = 0, NODE_LEVEL_STRIDE
    while size >> level:
        total += size >> level
        level += NODE_LEVEL_STRIDE
    return total


def check_unread_rows(
    report: Report,
    num_records: int,
    num_node_rows: int,
    prefix_problem: str | None,
    below: tuple[int, tuple[int, int, int, int]] | None = None,
) -> None:
    """Rows a resumed run did not read must be exactly those of the verified tree.

    ``below``: the state's size S and :func:`~auditlog.store.audit_reads.record_seqs_below` at
    S. The run reads the rows with seq >= S, so the rows below S must be exactly seq 0..S-1: a
    row deleted there and another put at seq -1 or on a duplicate seq (the administrator can
    drop the schema's checks) would keep the row count."""
    out = FindingCollector(report)
    if prefix_problem is not None:
        out.add(None, FindingCode.STATE_PREFIX, "the saved tree", "another", prefix_problem)
    if below is not None and below[1] != (below[0], below[0], 0, below[0] - 1):
        size, (num, distinct, low, high) = below
        out.add(
            None,
            FindingCode.ROWS_UNREAD,
            f"seq 0..{size - 1}",
            f"{num} rows, {distinct} distinct seqs in [{low}, {high}]",
            f"the log's record rows below the saved state ({size}) are {num} rows with "
            f"{distinct} distinct seqs from {low} to {high}, not seq 0..{size - 1}: rows below "
            f"the saved state were deleted, moved or duplicated",
        )
    if num_records != report.size:
        out.add(
            None,
            FindingCode.ROWS_UNREAD,
            report.size,
            num_records,
            f"the log stores {num_records} record rows, the verified tree holds {report.size}: "
            f"rows below the saved state were added or deleted",
        )
    expected = num_nodes(report.size)
    if num_node_rows != expected:
        out.add(
            None,
            FindingCode.ROWS_UNREAD,
            expected,
            num_node_rows,
            f"the log stores {num_node_rows} node rows, its tree of {report.size} records has "
            f"{expected}: node rows below the saved state were added or deleted",
        )
