"""``auditlog verify``: prove a database intact (exit 0), or say why not (exit 1, 2 or 3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import AuditlogError, ConfigurationError

from .options import DbOption, load_witness_policy, read_text_file, require_auditlog_database
from .verify_witnesses import ask, outside_anchors, tsa_certificates

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
    from .verify_report import emit, exit_code
    from .verify_run import run_verifier

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
        report = run_verifier(
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
    code = exit_code(report, witnessed)
    emit(report, code, as_json, witnessed, times, witnessed_at, answered)
    raise typer.Exit(code)


verify.__doc__ = f"{verify.__doc__}\n\n{EXIT_CODES_HELP}"


def _state_options(state: Path | None, state_key: Path | None) -> tuple[Path, Any] | None:
    if state is None and state_key is None:
        return None
    if state is None or state_key is None:
        raise ConfigurationError("--state and --state-key go together")
    from auditlog.verify_state import read_state_key

    return state, read_state_key(state_key)


def register(app: typer.Typer) -> None:
    app.command("verify", help=f"{verify.__doc__}")(verify)
