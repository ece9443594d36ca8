"""``auditlog export`` (evidence bundle or HTML transcript) and ``auditlog verify-bundle``.

``verify-bundle`` exits 0 when the bundle is intact under a ``--key`` given out of band, 1 on an
integrity failure (a ``--key`` that did not sign it included), 2 on a usage error (unreadable
file, malformed ``--key``), 3 when nothing failed but nothing was proven (no ``--key``: the
bundle's own embedded keys vouch only for themselves; or a witness policy not met).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from auditlog.errors import ConfigurationError, VerificationError

from .options import (
    DbOption,
    check_new_file,
    load_witness_policy,
    read_text_file,
    require_auditlog_database,
)
from .verify_witnesses import tsa_certificates

if TYPE_CHECKING:
    from datetime import datetime

    from auditlog.bundle.verify import BundleReport

__all__ = ["EXIT_INTACT", "EXIT_INTEGRITY", "EXIT_UNPROVEN", "EXIT_USAGE", "register"]

EXIT_INTACT = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_UNPROVEN = 3

VERIFY_BUNDLE_HELP = (
    "Verify an evidence bundle offline.\n\nExit codes: 0 intact under a --key given out of band "
    "(a key vouches for the log whose origin is its name; with --witness-key/--witness-policy, "
    "the policy met; with --tsa-cert, its timestamp valid); 1 integrity failure (a --key that did "
    "not sign it, a bad cosignature or timestamp, included); 2 usage error; 3 nothing failed but "
    "nothing was proven (no --key: the bundle's embedded keys vouch only for themselves; or the "
    "witness policy not met, or no timestamp)."
)


class ExportFormat(enum.StrEnum):
    BUNDLE = "bundle"
    HTML = "html"


def _keys(values: list[str] | None) -> list[str]:
    """``--key`` values: a verifier key, or a file holding one key per line."""
    keys: list[str] = []
    for value in values or []:
        path = Path(value)
        if "+" not in value and path.exists():
            text = read_text_file(path, "key file")
            keys.extend(line.strip() for line in text.splitlines() if line.strip())
        else:
            keys.append(value.strip())
    return keys


KeyOption = Annotated[
    list[str] | None,
    typer.Option("--key", help="trusted verifier key, or a file of them (repeat)"),
]


def export(
    db: DbOption,
    request: Annotated[str, typer.Option("--request", help="request id")],
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="bundle or html")] = (
        ExportFormat.BUNDLE
    ),
    checkpoint_size: Annotated[
        int | None, typer.Option(help="pin to this checkpoint (default: earliest covering)")
    ] = None,
    key: KeyOption = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite OUT if it exists")] = False,
) -> None:
    """Export a request's trail from the store (read-only) as a bundle or an HTML page."""
    from auditlog.api.html import render_transcript
    from auditlog.api.trail import trail_public
    from auditlog.bundle.export import export_bundle
    from auditlog.bundle.verify import parse_verifier_keys
    from auditlog.store.db import create_db_engine
    from auditlog.store.trail_reads import find_trail

    check_new_file(out, force=force)
    keys = _keys(key)
    require_auditlog_database(db, writer=False)
    trusted = parse_verifier_keys(keys)
    engine = create_db_engine(db, read_only=True)
    try:
        with engine.connect() as conn:
            if fmt is ExportFormat.BUNDLE:
                data = export_bundle(
                    conn, request, trusted=trusted, at_size=checkpoint_size, extra_keys=keys
                )
            else:
                stored = find_trail(conn, request, tenants=None, trusted=trusted)
                trail = trail_public(conn, stored, trusted, keys)
                data = render_transcript(trail).encode("utf-8")
    finally:
        engine.dispose()
    out.write_bytes(data)
    typer.echo(f"wrote {fmt} of request {request} to {out} ({len(data)} bytes)", err=True)


def _report_json(report: BundleReport) -> dict[str, object]:
    t = report.transcript
    from auditlog.bundle.verify import KeyTrust

    return {
        "status": "intact" if report.trust is KeyTrust.TRUSTED else "unproven",
        "log": report.log,
        "request_id": report.request_id,
        "tenant": report.tenant,
        "checkpoint_size": report.checkpoint_size,
        "checkpoint_root": report.checkpoint_root.hex(),
        "records": report.num_records,
        "trust": str(report.trust),
        "erased_payloads": list(report.erased_payloads),
        "erasure": None
        if report.erasure is None
        else {
            "log": report.erasure.log,
            "seq": report.erasure.seq,
            "ts": str(report.erasure.ts),
            "principal": report.erasure.principal,
            "reason": report.erasure.reason,
            "legal_basis": report.erasure.legal_basis,
            "holds_checked": False,  # docs/FORMAT.md 9.4: `auditlog verify` checks them
        },
        "finish_reason": t.finish_reason,
        "tokens": len(t.tokens),
        "notes": list(report.notes),
    }


def _outside_anchors(
    data: bytes, log: str, policy: Any, certs: Any
) -> tuple[list[Any], datetime | None]:
    """The bundle's checkpoint cosignatures against ``policy`` and its RFC 3161 token against
    ``certs`` (each when given): the findings, and the trusted time of the checkpoint."""
    from auditlog.bundle.format import decode_bundle
    from auditlog.witnesses.audit import check_bundle_timestamp, check_note_cosignatures

    witnessed: list[Any] = []
    bundle = decode_bundle(data)
    if policy is not None:
        witnessed = check_note_cosignatures(log, bundle.checkpoint, policy)
    trusted_time = None
    if certs is not None:
        stamped, trusted_time = check_bundle_timestamp(
            log, bundle.checkpoint, bundle.timestamp, certs
        )
        witnessed += stamped
    return witnessed, trusted_time


#: What a bundle cannot show of an erasure (docs/FORMAT.md 9.4, C15).
_HOLDS_NOT_CHECKED = (
    "not checked offline: whether a legal hold covered the request when it was erased (the "
    "holds of the administrative log name other tenants' requests, so no bundle carries them); "
    "`auditlog verify` of the administrative log checks it (erasure.held)"
)


def _print_report(
    report: BundleReport,
    code: int,
    witnessed: list[Any],
    trusted_time: datetime | None,
    *,
    proven: bool,
) -> None:
    """The verdict line and what qualifies it; findings and unproven notes on stderr."""
    for w in witnessed:
        typer.echo(f"{'FAILED' if w.failed else 'unproven'}: {w.code}: {w.message}", err=True)
    typer.echo(
        f"{'intact' if code == 0 else 'not proven' if code == 3 else 'FAILED'}: request "
        f"{report.request_id} ({report.num_records} records, tenant {report.tenant}) in log "
        f"{report.log}, checkpoint size {report.checkpoint_size}"
    )
    if trusted_time is not None:
        typer.echo(f"trusted time (RFC 3161) of the checkpoint: {trusted_time.isoformat()}")
    if report.erasure is not None:
        seqs = ", ".join(map(str, report.erased_payloads))
        typer.echo(f"payloads of records {seqs} {report.erasure.describe()}")
        typer.echo(_HOLDS_NOT_CHECKED)
    for note in report.notes:
        typer.echo(f"unproven: {note}", err=True)
    if not proven and not report.notes:
        typer.echo(
            "unproven: the signature was checked only against keys embedded in the bundle, "
            "which anyone can make; pass --key with the log's verifier key obtained out of band",
            err=True,
        )


def verify_bundle_cmd(
    file: Annotated[Path, typer.Argument(help="bundle file")],
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
    witness_key: Annotated[
        list[str] | None,
        typer.Option("--witness-key", help="Witness cosigner key; all must cosign (repeatable)"),
    ] = None,
    witness_policy: Annotated[
        Path | None, typer.Option("--witness-policy", help="Witness policy file (N-of-M groups)")
    ] = None,
    tsa_cert: Annotated[
        Path | None,
        typer.Option(
            "--tsa-cert",
            help="PEM: the RFC 3161 TSA's certificate and its root; the bundle's "
            "timestamp must verify under it and its trusted time is shown",
        ),
    ] = None,
) -> None:
    """Verify an evidence bundle offline (exit codes: ``VERIFY_BUNDLE_HELP``)."""
    import orjson

    from auditlog.bundle.verify import KeyTrust, verify_bundle

    from .verify_report import verdict_name

    policy = load_witness_policy(witness_key, witness_policy)
    certs = None if tsa_cert is None else tsa_certificates(tsa_cert)
    if file.is_dir():
        raise ConfigurationError(f"{file} is a directory, not a bundle file")
    data = file.read_bytes()  # an OSError is a usage error (exit 2, auditlog/cli/__init__.py)
    keys = _keys(key)
    try:
        report = verify_bundle(data, trusted_keys=keys)
    except VerificationError as exc:
        if as_json:
            typer.echo(orjson.dumps({"status": "failed", "error": str(exc)}).decode())
        else:
            typer.echo(f"FAILED: {exc}", err=True)
        raise typer.Exit(EXIT_INTEGRITY) from None
    witnessed, trusted_time = _outside_anchors(data, report.log, policy, certs)
    proven = report.trust is KeyTrust.TRUSTED
    code = EXIT_INTEGRITY if any(w.failed for w in witnessed) else 0
    if not code and (witnessed or not proven):
        code = EXIT_UNPROVEN
    if as_json:
        out = _report_json(report)
        out["status"] = verdict_name(code)
        if policy is not None or certs is not None:
            out["witness_findings"] = [
                {"code": str(w.code), "message": w.message} for w in witnessed
            ]
        if trusted_time is not None:
            out["trusted_time"] = trusted_time.isoformat()
        typer.echo(orjson.dumps(out).decode())
        raise typer.Exit(code)
    _print_report(report, code, witnessed, trusted_time, proven=proven)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``verify-bundle`` to ``app``."""
    app.command("export")(export)
    app.command("verify-bundle", help=VERIFY_BUNDLE_HELP)(verify_bundle_cmd)
