"""Verifying a PostgreSQL streaming replica (``auditlog verify --standby``), docs/SCALING.md.

A standby replays the primary's commits in order: it holds an earlier, transaction-consistent
state of the primary. A witness (or the caller) may hold a checkpoint the primary committed and
the standby has not replayed yet; verified as an ordinary database, that standby is
indistinguishable from a rolled-back one (``witness.rollback``, ``checkpoint.missing``). With
``standby=True`` the verifier first checks that the database really is a standby
(``pg_is_in_recovery()``), then sets such a kept checkpoint aside as a pending tail: it neither
anchors nor fails anything, and the verdict cannot be ``intact`` while one is set aside. Kept
checkpoints the standby already stores are checked as always (a different root is a rewrite).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from auditlog.errors import AuditlogError, ConfigurationError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.note import split_note
from auditlog.ledger.report import PENDING_SUFFIX

__all__ = ["check_standby", "lag_reason", "split_lagging", "vanished_reason"]


def check_standby(conn: Connection) -> None:
    """Raise ConfigurationError unless ``conn`` reads a PostgreSQL server in recovery."""
    if conn.dialect.name != "postgresql":
        raise ConfigurationError("--standby: only a PostgreSQL streaming replica is a standby")
    if not conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one():
        raise ConfigurationError(
            "--standby: the database is not a standby (pg_is_in_recovery() is false): verify "
            "it without --standby"
        )


def split_lagging(notes: Iterable[str], stored_sizes: set[int]) -> tuple[list[str], list[int]]:
    """(notes to check, sizes set aside): a kept note whose size the standby does not store yet
    is set aside; a note that does not parse is kept, for the verifier to report."""
    kept: list[str] = []
    lagging: list[int] = []
    for note in notes:
        try:
            size = parse_checkpoint(split_note(note)[0]).size
        except AuditlogError:
            kept.append(note)
            continue
        if size in stored_sizes:
            kept.append(note)
        else:
            lagging.append(size)
    return kept, sorted(set(lagging))


def lag_reason(size: int, stored_max: int | None) -> str:
    """The pending reason for a kept checkpoint of ``size`` the standby lacks."""
    have = "no checkpoint" if stored_max is None else f"checkpoints up to size {stored_max}"
    return (
        f"a checkpoint of size {size} is kept outside the database, and this standby holds "
        f"{have}: not yet replicated {PENDING_SUFFIX}"
    )


def vanished_reason(origin: str) -> str:
    """The pending reason for a log vouched for outside the database, absent from the standby."""
    return (
        f"log {origin!r} is kept outside the database and not yet on this standby {PENDING_SUFFIX}"
    )
