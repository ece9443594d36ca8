"""``auditlog replay``: re-run a request from its verified trail and compare token by token.

The trail comes from an evidence bundle file or from the store (``--db`` and ``--request``,
read-only); it is verified first (docs/FORMAT.md section 9.3), then replayed alone on the
reference engine with model files found by digest under ``--model-dir`` (docs/REPLAY.md).

Exit codes: 0 identical; 1 divergent (the first divergent index with the recorded and replayed
token and provenance), or the trail fails verification (nothing is replayed); 2 cannot replay
(the reason: no replay envelope, numerics that are not batch-invariant, no seed, erased
content, no model with the recorded digest) or a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from auditlog.errors import AuditlogError

from .bundle_cmd import EXIT_USAGE, KeyOption, _keys
from .options import OptionalDbOption, require_auditlog_database

__all__ = ["register"]


def _load_bundle(file: Path | None, db: str | None, request: str | None, keys: list[str]) -> Any:
    """The bundle (decoded) from ``file`` or from the store."""
    from auditlog.bundle.format import decode_bundle

    if file is None and db is None:
        raise typer.BadParameter("give a bundle file, or --db (or $AUDITLOG_DB_URL) with --request")
    if file is not None:
        data = file.read_bytes()
    else:
        from auditlog.bundle.export import export_bundle
        from auditlog.store.db import create_db_engine

        if request is None or db is None:
            raise typer.BadParameter("--db needs --request")
        require_auditlog_database(db, writer=False)
        engine = create_db_engine(db, read_only=True)
        try:
            with engine.connect() as conn:
                data = export_bundle(conn, request, extra_keys=keys)
        finally:
            engine.dispose()
    return decode_bundle(data)


def _result_json(result: Any, trust: Any) -> dict[str, object]:
    div = result.divergence
    return {
        "request_id": result.request_id,
        "status": result.status.value,
        "reason": result.reason,
        "trust": None if trust is None else trust.value,
        "num_recorded": result.num_recorded,
        "num_replayed": result.num_replayed,
        "draft_step": result.draft_step,
        "divergence": None
        if div is None
        else {
            "index": div.index,
            "recorded_token": div.recorded_token,
            "replayed_token": div.replayed_token,
            "recorded_provenance": div.recorded_provenance,
            "replayed_provenance": div.replayed_provenance,
        },
    }


def replay_cmd(
    file: Annotated[Path | None, typer.Argument(help="evidence bundle file")] = None,
    db: OptionalDbOption = None,
    request: Annotated[str | None, typer.Option("--request", help="request id, with --db")] = None,
    key: KeyOption = None,
    model_dir: Annotated[
        Path | None, typer.Option("--model-dir", help="models looked up by digest (default: demo)")
    ] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON result")] = False,
) -> None:
    """Replay a request from its trail: exit 0 identical, 1 divergent, 2 cannot replay."""
    import torch

    from auditlog.bundle.verify import parse_verifier_keys
    from auditlog.replay import DEFAULT_MODEL_DIR, ReplayStatus, replay_bundle

    try:
        keys = _keys(key)
        bundle = _load_bundle(file, db, request, keys)
        trusted = parse_verifier_keys(keys)
    except (OSError, AuditlogError) as exc:
        typer.echo(f"auditlog replay: cannot read the trail: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    torch.set_num_threads(threads)
    result, trust = replay_bundle(
        bundle, trusted, model_dir=model_dir or DEFAULT_MODEL_DIR, device=device
    )
    if as_json:
        typer.echo(orjson.dumps(_result_json(result, trust)).decode())
    else:
        label = {
            ReplayStatus.IDENTICAL: "identical",
            ReplayStatus.DIVERGENT: "DIVERGENT",
            ReplayStatus.REFUSED: "cannot replay",
            ReplayStatus.UNVERIFIED: "FAILED",
        }[result.status]
        typer.echo(f"{label}: request {result.request_id}: {result.reason}")
        if trust is not None and trust.value == "untrusted":
            typer.echo(
                "warning: the trail's checkpoint was checked only against keys it came with "
                "(untrusted); pass --key with the log's verifier key obtained out of band",
                err=True,
            )
    raise typer.Exit(result.status.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``replay`` to ``app``."""
    app.command("replay")(replay_cmd)
