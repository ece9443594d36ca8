"""What ``auditlog verify`` prints: the exit code of a database report and its outside anchors,
and that report as JSON (``--json``) or as a table and lines of findings."""

from __future__ import annotations

import sys
from typing import Any

from .verify_witnesses import print_witness_state, witness_finding

__all__ = ["emit", "exit_code", "report_json", "verdict_name"]

_STYLE = {"intact": "green", "failed": "red", "unproven": "yellow"}


def exit_code(report: Any, witnessed: list[Any] | None) -> int:
    """The worse of the database's verdict and the witness/timestamp checks: a bad cosignature
    or token fails (1), a missing one leaves the database unproven (3)."""
    code = int(report.verdict.exit_code)
    if any(w.failed for w in witnessed or ()):
        return 1
    return 3 if witnessed and code == 0 else code


def verdict_name(code: int) -> str:
    """The verdict whose exit code is ``code`` (0, 1 or 3)."""
    from auditlog.ledger.report import Verdict

    return str(next(v for v in Verdict if v.exit_code == code))


def emit(
    report: Any,
    code: int,
    as_json: bool,
    witnessed: list[Any] | None,
    times: dict[str, Any],
    witnessed_at: dict[str, int | None],
    answered: dict[str, list[str]],
) -> None:
    """Write the report to stdout: one JSON object, or the witness state, table and findings."""
    if as_json:
        import orjson

        out = report_json(report)
        out["exit_code"] = code
        out["verdict"] = verdict_name(code)
        if witnessed is not None:
            out["witness_findings"] = [witness_finding(f) for f in witnessed]
            out["trusted_time"] = {name: when.isoformat() for name, when in times.items()}
            out["witnessed_at"] = witnessed_at
            out["witnesses_answered"] = answered
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        print_witness_state(witnessed_at, answered)
        _print(report, witnessed, times)


def report_json(report: Any) -> dict[str, Any]:
    """The database report (every log, and the ``--request`` verdict) as a JSON object."""
    out: dict[str, Any] = {
        "verdict": str(report.verdict),
        "exit_code": report.verdict.exit_code,
        "ok": report.ok,
        "keys_from_database": report.keys_from_database,
        "unproven": report.unproven,
        "logs": [_log_json(r) for r in report.logs],
    }
    if report.request is not None:
        rq = report.request
        out["request"] = {
            "request_id": rq.request_id,
            "verdict": str(rq.verdict),
            "reason": rq.reason,
            "log": rq.log,
            "seqs": rq.seqs,
            "findings": [_finding(f) for f in rq.findings],
        }
    return out


def _log_json(r: Any) -> dict[str, Any]:
    return {
        "log": r.log,
        "verdict": str(r.verdict),
        "ok": r.ok,
        "size": r.size,
        "root": r.root.hex(),
        "anchored_at": r.anchored_size,
        "resumed_from": r.resumed_from,
        "unproven": r.unproven,
        "counts": r.counts,
        "suppressed": {str(k): v for k, v in r.suppressed.items()},
        "findings": [_finding(f) for f in r.findings],
        "sealed": len(r.sealed),
        "erased": {
            rid: {"log": e.log, "record": e.index, "reason": e.reason}
            for rid, e in sorted(r.erased.items())
        },
    }


def _finding(f: Any) -> dict[str, Any]:
    return {
        "log": f.log,
        "index": f.index,
        "code": str(f.code),
        "severity": str(f.severity),
        "expected": str(f.expected),
        "actual": str(f.actual),
        "message": f.message,
    }


def _print(report: Any, witnessed: list[Any] | None, times: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    console.print(_table(report))
    _print_findings(console, report)
    _print_outside(console, witnessed, times)
    verdict = verdict_name(exit_code(report, witnessed))
    words = {"intact": "intact", "failed": "integrity failure", "unproven": "not proven"}
    console.print(f"[{_STYLE[verdict]}]{words[verdict]}[/{_STYLE[verdict]}]")


def _table(report: Any) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="auditlog verify")
    for column in ("log", "records", "root", "anchored at", "findings", "verdict"):
        table.add_column(column)
    for r in report.logs:
        style = _STYLE[str(r.verdict)]
        table.add_row(
            escape(r.log),
            str(r.size),
            r.root.hex()[:16] + "…",
            "-" if r.anchored_size is None else str(r.anchored_size),
            str(len(r.findings) + sum(r.suppressed.values())),
            f"[{style}]{r.verdict}[/{style}]",
        )
    return table


def _print_findings(console: Any, report: Any) -> None:
    """The database's findings, erasures, unproven reasons and the ``--request`` verdict."""
    from rich.markup import escape

    for f in report.findings:
        style = "yellow" if str(f.severity) == "warning" else "red"
        where = "" if f.index is None else f" at index {f.index}"
        console.print(
            f"[{style}]{f.severity}[/{style}] {escape(f.log)}{where}: {f.code}: {escape(f.message)}"
        )
    for r in report.logs:
        for rid, e in sorted(r.erased.items()):
            console.print(
                f"erased {escape(r.log)} request {escape(rid)}: payloads erased by record "
                f"{e.index} of {escape(e.log)} ({escape(e.reason)}; {escape(e.legal_basis)})"
            )
    for r in report.logs:
        for reason in r.unproven:
            console.print(f"[yellow]unproven[/yellow] {escape(r.log)}: {escape(reason)}")
    for reason in report.unproven:
        console.print(f"[yellow]unproven[/yellow] {escape(reason)}")
    if report.request is not None:
        rq = report.request
        style = _STYLE[str(rq.verdict)]
        verdict_text = f"[{style}]{rq.verdict}[/{style}]"
        console.print(f"request {escape(rq.request_id)}: {verdict_text} ({escape(rq.reason)})")


def _print_outside(console: Any, witnessed: list[Any] | None, times: dict[str, Any]) -> None:
    """The witness and timestamp findings, and each log's trusted time."""
    from rich.markup import escape

    for w in witnessed or ():
        kind = "[red]error[/red]" if w.failed else "[yellow]unproven[/yellow]"
        console.print(f"{kind} {escape(w.log)}: {w.code}: {escape(w.message)}")
    for name, when in times.items():
        console.print(f"{escape(name)}: trusted time (RFC 3161) {when.isoformat()}")
