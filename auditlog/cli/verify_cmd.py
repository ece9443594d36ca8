"""``auditlog verify``: prove a database intact (exit 0), or say why not (exit 1, 2 or 3)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import AuditlogError, ConfigurationError

from .options import DbOption, load_witness_policy, read_text_file, require_auditlog_database
from .verify_witnesses import (
    ask,
    outside_anchors,
    print_witness_state,
    tsa_certificates,
    witness_finding,
)

__all__ = ["EXIT_CODES_HELP", "parse_duration", "register"]

EXIT_CODES_HELP = (
    "Exit codes: 0 intact (every log anchored by a --key given out of band, every record "
    "covered by a checkpoint signed by it); 1 integrity failure; 2 usage or configuration "
    "error; 3 nothing failed but nothing was proven (no --key for a log, records not yet "
    "covered by a trusted checkpoint, an empty database, a --request that does not exist)."
)

_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (``90``, ``90s``, ``15m``, ``2h``, ``1d``); raises ConfigurationError."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigurationError(f"--max-pending must read like 90s, 15m, 2h or 1d, got {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def verify(
    db: DbOption,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="Verifier key obtained out of band (repeatable); it vouches for the log whose "
            "origin is its name",
        ),
    ] = None,
    witness_dir: Annotated[
        Path | None, typer.Option("--witness-dir", help="Directory witness holding checkpoints")
    ] = None,
    trusted_checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--trusted-checkpoint", help="Signed checkpoint note you hold (repeatable)"),
    ] = None,
    log: Annotated[str | None, typer.Option("--log", help="Verify only this log origin")] = None,
    request: Annotated[
        str | None, typer.Option("--request", help="Also give the verdict for this request")
    ] = None,
    max_pending: Annotated[
        str | None,
        typer.Option(
            "--max-pending",
            help="Records not covered by a trusted checkpoint and older than this (90s, 15m, "
            "2h, 1d) are a failure (exit 1); younger ones are pending (exit 3)",
        ),
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
    standby: Annotated[
        bool,
        typer.Option(
            "--standby",
            help="The database is a PostgreSQL streaming replica that may lag: checkpoints "
            "witnessed or held but not yet replicated are pending (exit 3), not a rollback",
        ),
    ] = False,
    ask_witnesses: Annotated[
        bool,
        typer.Option(
            "--ask-witnesses",
            help="Fetch each policy witness's latest cosigned checkpoint (its URL) and check the "
            "database against it: catches a log rolled back to an earlier witnessed state",
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Processes checking ranges of a log in parallel (default: every core)",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="State file of incremental verification: a log whose state it holds is "
            "checked only from there on; the state of each log without failure is saved "
            "(needs --state-key; docs/TRUST.md)",
        ),
    ] = None,
    state_key: Annotated[
        Path | None,
        typer.Option(
            "--state-key",
            help="Signing key of the verifier's own (auditlog keygen verify-state --out FILE) "
            "that signs --state; keep it from the database's writer and administrator",
        ),
    ] = None,
) -> None:
    """Recompute every hash, chain, checkpoint and node of the database (read-only)."""
    try:
        # configuration first: a bad policy or certificate is refused before the database opens
        policy = load_witness_policy(witness_key, witness_policy)
        tsa_certs = None if tsa_cert is None else tsa_certificates(tsa_cert)
        notes = [read_text_file(p, "trusted checkpoint") for p in trusted_checkpoint or []]
        max_pending_s = None if max_pending is None else parse_duration(max_pending)
        resume = _state_options(state, state_key)
        if jobs is not None and jobs < 1:
            raise ConfigurationError(f"--jobs must be 1 or more, got {jobs}")
        require_auditlog_database(db, writer=False)
        asked = ask(db, policy, log, key) if ask_witnesses else None
        notes += [] if asked is None else asked.notes
        report = _run(
            db, key, witness_dir, notes, log, request, max_pending_s, as_json,
            standby=standby, jobs=jobs, resume=resume,
        )  # fmt: skip
        witnessed, times, witnessed_at = outside_anchors(db, report, policy, tsa_certs)
        if asked is not None:
            witnessed = [*(witnessed or []), *asked.findings]
        answered = {} if asked is None else asked.answered
    except AuditlogError as exc:
        typer.echo(f"auditlog verify: error: {exc}", err=True)
        raise typer.Exit(2) from None
    code = _exit_code(report, witnessed)
    if as_json:
        import orjson

        out = _as_json(report)
        out["exit_code"] = code
        out["verdict"] = {0: "intact", 1: "failed", 3: "unproven"}[code]
        if witnessed is not None:
            out["witness_findings"] = [witness_finding(f) for f in witnessed]
            out["trusted_time"] = {name: when.isoformat() for name, when in times.items()}
            out["witnessed_at"] = witnessed_at
            out["witnesses_answered"] = answered
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        print_witness_state(witnessed_at, answered)
        _print(report, witnessed, times)
    raise typer.Exit(code)


def _exit_code(report: Any, witnessed: list[Any] | None) -> int:
    """The worse of the database's verdict and the witness/timestamp checks: a bad cosignature
    or token fails (1), a missing one leaves the database unproven (3)."""
    code = int(report.verdict.exit_code)
    if any(w.failed for w in witnessed or ()):
        return 1
    return 3 if witnessed and code == 0 else code


verify.__doc__ = f"{verify.__doc__}\n\n{EXIT_CODES_HELP}"


def _state_options(state: Path | None, state_key: Path | None) -> tuple[Path, Any] | None:
    if state is None and state_key is None:
        return None
    if state is None or state_key is None:
        raise ConfigurationError("--state and --state-key go together")
    from auditlog.verify_state import read_state_key

    return state, read_state_key(state_key)


def _run(
    db: str,
    key: list[str] | None,
    witness_dir: Path | None,
    notes: list[str],
    log: str | None,
    request: str | None,
    max_pending_s: int | None,
    as_json: bool,
    *,
    standby: bool = False,
    jobs: int | None = None,
    resume: tuple[Path, Any] | None = None,
) -> Any:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from auditlog.verifier import verify_database
    from auditlog.verify_ranges import default_jobs

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]verifying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal or as_json,
    ) as progress:
        task: list[Any] = []

        def on_log(origin: str, size: int) -> None:
            task.append(progress.add_task(escape(origin), total=size))

        def advance(n: int) -> None:
            if task:
                progress.update(task[-1], completed=n)

        return verify_database(
            db,
            keys=key or [],
            witness_dir=witness_dir,
            trusted_checkpoints=notes,
            origin=log,
            request_id=request,
            max_pending_s=max_pending_s,
            progress=advance,
            on_log=on_log,
            standby=standby,
            jobs=default_jobs() if jobs is None else jobs,
            state_path=None if resume is None else resume[0],
            state_key=None if resume is None else resume[1],
        )


def _as_json(report: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "verdict": str(report.verdict),
        "exit_code": report.verdict.exit_code,
        "ok": report.ok,
        "keys_from_database": report.keys_from_database,
        "unproven": report.unproven,
        "logs": [
            {
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
            for r in report.logs
        ],
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


_STYLE = {"intact": "green", "failed": "red", "unproven": "yellow"}


def _print(report: Any, witnessed: list[Any] | None, times: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
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
    console.print(table)
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
    for w in witnessed or ():
        kind = "[red]error[/red]" if w.failed else "[yellow]unproven[/yellow]"
        console.print(f"{kind} {escape(w.log)}: {w.code}: {escape(w.message)}")
    for name, when in times.items():
        console.print(f"{escape(name)}: trusted time (RFC 3161) {when.isoformat()}")
    verdict = {0: "intact", 1: "failed", 3: "unproven"}[_exit_code(report, witnessed)]
    words = {"intact": "intact", "failed": "integrity failure", "unproven": "not proven"}
    console.print(f"[{_STYLE[verdict]}]{words[verdict]}[/{_STYLE[verdict]}]")


def register(app: typer.Typer) -> None:
    app.command("verify", help=f"{verify.__doc__}")(verify)
