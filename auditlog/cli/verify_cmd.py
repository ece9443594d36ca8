"""``auditlog verify``: prove a database intact (exit 0), or name the first bad index (exit 1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import AuditlogError, ConfigurationError, NotFoundError

from .options import DbOption, load_witness_policy, read_text_file, require_auditlog_database

__all__ = ["register"]


def verify(
    db: DbOption,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Trusted verifier key (repeatable)")
    ] = None,
    witness_dir: Annotated[
        Path | None, typer.Option("--witness-dir", help="Directory witness holding checkpoints")
    ] = None,
    trusted_checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--trusted-checkpoint", help="Signed checkpoint note you trust (repeatable)"),
    ] = None,
    log: Annotated[str | None, typer.Option("--log", help="Verify only this log origin")] = None,
    request: Annotated[
        str | None, typer.Option("--request", help="Also show the verdict for this request")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
    witness_key: Annotated[
        list[str] | None,
        typer.Option("--witness-key", help="Witness cosigner key; all must cosign (repeatable)"),
    ] = None,
    witness_policy: Annotated[
        Path | None, typer.Option("--witness-policy", help="Witness policy file (N-of-M groups)")
    ] = None,
    tsa_cert: Annotated[
        Path | None,
        typer.Option("--tsa-cert", help="PEM: the RFC 3161 TSA's certificate and its root"),
    ] = None,
) -> None:
    """Recompute every hash, chain, checkpoint and proof of the database (read-only)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from auditlog.verifier import verify_database

    policy = load_witness_policy(witness_key, witness_policy)
    tsa_certs = None if tsa_cert is None else _tsa_certificates(tsa_cert)

    notes = [read_text_file(p, "trusted checkpoint") for p in trusted_checkpoint or []]
    require_auditlog_database(db, writer=False)
    console = Console(stderr=True)
    show_bar = console.is_terminal and not as_json
    with Progress(
        TextColumn("[bold]verifying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show_bar,
    ) as progress:
        task: list[Any] = []

        def on_log(origin: str, size: int) -> None:
            task.append(progress.add_task(origin, total=size))

        def advance(n: int) -> None:
            if task:
                progress.update(task[-1], completed=n)

        report = verify_database(
            db,
            keys=key or [],
            witness_dir=witness_dir,
            trusted_checkpoints=notes,
            origin=log,
            progress=advance,
            on_log=on_log,
        )
    request_findings: list[Any] = []
    if request is not None:
        from auditlog.store import create_db_engine
        from auditlog.trails import read_trail

        engine = create_db_engine(db, read_only=True)
        with engine.connect() as conn:
            for log_report in report.logs:
                try:
                    trail = read_trail(conn, log_report.log, request)
                except NotFoundError:
                    continue
                except AuditlogError as exc:  # a body so damaged it does not decode
                    request_findings.append(_Unreadable(log_report.log, str(exc)))
                    continue
                seqs = {r.seq for r in trail.records}
                request_findings += [f for f in log_report.findings if f.index in seqs]
        engine.dispose()
    witnessed = None  # anchors outside the operator: a bad one fails (1), a missing one is 3
    sizes = {r.log: r.size for r in report.logs}
    times: dict[str, Any] = {}
    if policy is not None or tsa_certs is not None:
        from auditlog.witnesses.audit import check_database_cosignatures, check_database_timestamps

        witnessed = [] if policy is None else check_database_cosignatures(db, policy, sizes)
        if tsa_certs is not None:
            stamped, times = check_database_timestamps(db, tsa_certs, sizes)
            witnessed += stamped
    if as_json:
        import orjson

        out = _as_json(report, request, request_findings)
        if witnessed is not None:
            out["witness_findings"] = [_finding(f) for f in witnessed]
            out["trusted_time"] = {log: when.isoformat() for log, when in times.items()}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        _print(report, request, request_findings, witnessed)
        for log_name, when in times.items():
            from rich.console import Console

            Console().print(f"{log_name}: trusted time (RFC 3161) {when.isoformat()}")
    if not report.ok or any(f.failed for f in witnessed or ()):
        raise typer.Exit(1)
    if witnessed:
        raise typer.Exit(3)


def _as_json(report: Any, request: str | None, request_findings: list[Any]) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "keys_from_database": report.keys_from_database,
        "logs": [
            {
                "log": r.log,
                "ok": r.ok,
                "size": r.size,
                "root": r.root.hex(),
                "anchored_at": report.anchored.get(r.log),
                "counts": r.counts,
                "suppressed": {str(k): v for k, v in r.suppressed.items()},
                "findings": [_finding(f) for f in r.findings],
            }
            for r in report.logs
        ],
        **(
            {"request": request, "request_findings": [_finding(f) for f in request_findings]}
            if request
            else {}
        ),
    }


def _finding(f: Any) -> dict[str, Any]:
    if not hasattr(f, "index"):  # a witness finding: failed, or unproven
        return {"log": f.log, "size": f.size, "code": str(f.code), "failed": f.failed,
                "message": f.message}  # fmt: skip
    return {
        "log": f.log,
        "index": f.index,
        "code": str(f.code),
        "severity": str(f.severity),
        "expected": str(f.expected),
        "actual": str(f.actual),
        "message": f.message,
    }


def _print(
    report: Any, request: str | None, request_findings: list[Any], witnessed: Any = None
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="auditlog verify")
    for column in ("log", "records", "root", "anchored at", "findings", "verdict"):
        table.add_column(column)
    for r in report.logs:
        anchored = report.anchored.get(r.log)
        table.add_row(
            r.log,
            str(r.size),
            r.root.hex()[:16] + "…",
            "-" if anchored is None else str(anchored),
            str(len(r.findings) + sum(r.suppressed.values())),
            "[green]intact[/green]" if r.ok else "[red]FAILED[/red]",
        )
    console.print(table)
    for f in report.findings:
        style = "yellow" if str(f.severity) == "warning" else "red"
        where = "" if f.index is None else f" at index {f.index}"
        console.print(f"[{style}]{f.severity}[/{style}] {f.log}{where}: {f.code}: {f.message}")
    if report.keys_from_database:
        console.print(
            "[yellow]warning[/yellow] no --key given: signatures were checked against keys read "
            "from the database itself"
        )
    if not report.anchored:
        console.print(
            "[yellow]warning[/yellow] no witness or trusted checkpoint: a database rewritten "
            "consistently by its administrator cannot be detected (use --witness-dir)"
        )
    if request is not None:
        verdict = "intact" if not request_findings else f"{len(request_findings)} findings"
        console.print(f"request {request}: {verdict}")
    for w in witnessed or ():
        kind = "[red]error[/red]" if w.failed else "[yellow]unproven[/yellow]"
        console.print(f"{kind} {w.log}: {w.code}: {w.message}")
    failed = not report.ok or any(w.failed for w in witnessed or ())
    verdict = "[yellow]unproven[/yellow]" if witnessed else "[green]intact[/green]"
    console.print("[red]integrity failure[/red]" if failed else verdict)


def _tsa_certificates(path: Path) -> Any:
    from auditlog.witnesses.tsa import load_tsa_certificates

    try:
        return load_tsa_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read TSA certificate {path}: {exc}") from exc


class _Unreadable:
    """A request-level finding for a trail that cannot even be decoded."""

    def __init__(self, log: str, message: str) -> None:
        self.log, self.index, self.message = log, None, message
        self.code, self.severity, self.expected, self.actual = "trail.unreadable", "error", "", ""


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
