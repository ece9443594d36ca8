"""The anchors of one log: its stored checkpoints, the checkpoints kept outside the database,
and the pending tail (docs/FORMAT.md section 7, C10). Pure: values in, findings out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from auditlog.errors import AuditlogError
from auditlog.ledger.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from auditlog.ledger.note import Verifier, split_note
from auditlog.ledger.report import (
    PENDING_SUFFIX,
    CheckpointRow,
    FindingCode,
    FindingCollector,
    Report,
)

__all__ = ["check_anchors", "check_pending", "open_checkpoints", "open_kept"]


# -- checkpoints --------------------------------------------------------------------------------


def open_checkpoints(
    origin: str,
    rows: Iterable[str | CheckpointRow],
    verifiers: list[Verifier],
    out: FindingCollector,
) -> dict[int, list[tuple[int, bytes]]]:
    """Signature-checked stored checkpoints: size -> [(row number, root)]."""
    by_size: dict[int, list[tuple[int, bytes]]] = {}
    for number, row in enumerate(rows):
        note = row if isinstance(row, str) else row.note
        if isinstance(row, CheckpointRow):
            _check_columns_of(number, row, out)
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


def _check_columns_of(number: int, row: CheckpointRow, out: FindingCollector) -> None:
    """The ``size``/``root`` columns of a stored checkpoint are copies of its signed note."""
    try:
        cp = parse_checkpoint(split_note(row.note)[0])
    except AuditlogError:
        return  # reported as checkpoint.invalid
    if (cp.size, cp.root) != (row.size, row.root):
        out.add(
            None,
            FindingCode.CHECKPOINT_COLUMN,
            f"size {cp.size} root {cp.root.hex()}",
            f"size {row.size} root {row.root.hex()}",
            f"stored checkpoint #{number}: its size/root columns ({row.size}, "
            f"{row.root.hex()}) differ from its signed note ({cp.size}, {cp.root.hex()})",
        )


def open_kept(
    origin: str,
    witnessed: str | Sequence[str] | None,
    verifiers: list[Verifier],
    out: FindingCollector,
) -> list[Checkpoint]:
    """Checkpoints kept outside the database, each signed by a trusted key."""
    notes = [witnessed] if isinstance(witnessed, str) else list(witnessed or ())
    kept: list[Checkpoint] = []
    for note in notes:
        try:
            kept.append(open_checkpoint(note, verifiers, origin=origin))
        except AuditlogError as exc:
            out.add(
                None,
                FindingCode.WITNESS_INVALID,
                "a witnessed checkpoint signed by a trusted key",
                "unverifiable note",
                f"witnessed checkpoint: {exc}",
            )
    return kept


def check_anchors(
    stored: dict[int, list[tuple[int, bytes]]],
    kept: list[Checkpoint],
    roots: dict[int, bytes],
    size: int,
    out: FindingCollector,
) -> list[int]:
    """Compare every trusted checkpoint with the recomputed roots; the sizes that matched."""
    matched = []
    for cp_size, entries in sorted(stored.items()):
        for number, cp_root in entries:
            if cp_size > size:
                out.add(
                    size,
                    FindingCode.CHECKPOINT_TRUNCATED,
                    cp_size,
                    size,
                    f"stored checkpoint #{number} commits to {cp_size} records, the log has "
                    f"{size}: records {size}..{cp_size - 1} are missing (log truncated)",
                )
            elif roots.get(cp_size) != cp_root:
                got = roots.get(cp_size, b"").hex()
                out.add(
                    max(cp_size - 1, 0),
                    FindingCode.CHECKPOINT_ROOT,
                    cp_root.hex(),
                    got,
                    f"stored checkpoint #{number} at size {cp_size} does not match the "
                    f"records: expected root {cp_root.hex()}, computed {got}",
                )
            else:
                matched.append(cp_size)
    for cp in kept:
        if cp.size > size:
            out.add(
                size,
                FindingCode.WITNESS_ROLLBACK,
                cp.size,
                size,
                f"witnessed checkpoint commits to {cp.size} records, the log has {size}: "
                f"the database was rolled back or truncated",
            )
        elif roots.get(cp.size) != cp.root:
            out.add(
                max(cp.size - 1, 0),
                FindingCode.WITNESS_REWRITE,
                cp.root.hex(),
                roots.get(cp.size, b"").hex(),
                f"witnessed checkpoint at size {cp.size} does not match the records: "
                f"the database was rolled back or rewritten",
            )
        else:
            matched.append(cp.size)
    return matched


def check_pending(
    report: Report,
    first_ts: dict[int, int],
    max_pending_ns: int | None,
    now_ns: int | None,
    out: FindingCollector,
) -> None:
    """Records after the largest trusted checkpoint are pending, or a failure when too old."""
    anchored = report.anchored_size
    covered = 0 if anchored is None else anchored
    if anchored is None and report.size == 0:
        report.unproven.append("the log is empty and no trusted checkpoint vouches for it")
        return
    if covered >= report.size:
        return
    oldest = first_ts.get(covered)
    too_old = (
        max_pending_ns is not None
        and now_ns is not None
        and oldest is not None
        and oldest < now_ns - max_pending_ns
    )
    what = f"records {covered}..{report.size - 1} are not covered by a trusted checkpoint"
    if too_old:
        out.add(
            covered,
            FindingCode.TAIL_UNSIGNED,
            f"a trusted checkpoint within {max_pending_ns} ns",
            f"unsigned since ts {oldest}",
            f"{what}, and the first of them is older than the maximum pending age: the writer "
            f"never signed them (forged, or the writer failed)",
        )
    else:
        report.unproven.append(f"{what} {PENDING_SUFFIX}")
