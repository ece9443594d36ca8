"""The outside anchors of ``auditlog verify``: stored cosignatures against the witness policy,
RFC 3161 tokens against the TSA, and the witnesses' own latest view (``--ask-witnesses``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditlog.errors import ConfigurationError

__all__ = ["ask", "outside_anchors", "print_witness_state", "tsa_certificates", "witness_finding"]


def ask(db: str, policy: Any, log: str | None, keys: list[str] | None) -> Any:
    """The witnesses' latest cosigned checkpoints, asked before the database is read."""
    if policy is None:
        raise ConfigurationError("--ask-witnesses needs --witness-policy (with witness URLs)")
    from auditlog.witnesses.audit import ask_about_database

    return ask_about_database(db, policy, origin=log, keys=keys or [])


def outside_anchors(
    db: str, report: Any, policy: Any, tsa_certs: Any
) -> tuple[list[Any] | None, dict[str, Any], dict[str, int | None]]:
    """Cosignatures against the witness policy, and RFC 3161 tokens against the TSA: the
    findings, the trusted time and the witnessed size of each log."""
    if policy is None and tsa_certs is None:
        return None, {}, {}
    from auditlog.witnesses.audit import check_database_cosignatures, check_database_timestamps

    sizes = {r.log: r.size for r in report.logs}
    witnessed: list[Any] = []
    witnessed_at: dict[str, int | None] = {}
    if policy is not None:
        witnessed, witnessed_at = check_database_cosignatures(db, policy, sizes)
    times: dict[str, Any] = {}
    if tsa_certs is not None:
        stamped, times = check_database_timestamps(db, tsa_certs, sizes)
        witnessed += stamped
    return witnessed, times, witnessed_at


def print_witness_state(at: dict[str, int | None], answered: dict[str, list[str]]) -> None:
    """Per log: the largest checkpoint the witness policy accepts, and who answered."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for origin, size in at.items():
        what = "no checkpoint meets the policy" if size is None else f"witnessed at size {size}"
        console.print(f"{escape(origin)}: {what} (stored cosignatures)")
    for origin, names in answered.items():
        console.print(
            f"{escape(origin)}: latest cosigned checkpoint asked of the witnesses; verified "
            f"answers from {escape(', '.join(names) or 'none')}"
        )


def tsa_certificates(path: Path) -> Any:
    from auditlog.witnesses.tsa import load_tsa_certificates

    try:
        return load_tsa_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read TSA certificate {path}: {exc}") from exc


def witness_finding(f: Any) -> dict[str, Any]:
    return {"log": f.log, "size": f.size, "code": str(f.code), "failed": f.failed,
            "message": f.message}  # fmt: skip
