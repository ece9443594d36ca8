"""``auditlog serve``: the OpenAI-compatible inference server with auditing embedded.

Fail-closed by default (C21): a token leaves only once its record is durable. ``--fail-open``
streams at once and relies on the recorder's spool and gap alarms. There is no option, header or
body field that turns recording off (C23).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auditlog.errors import ConfigurationError

__all__ = ["register"]


def _db_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db)}"


def serve(
    db: Annotated[str, typer.Option("--db", help="Database URL, or a SQLite file path")] = (
        "auditlog.db"
    ),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    witness_dir: Annotated[
        Path, typer.Option("--witness-dir", help="Directory witness for checkpoints (C10)")
    ] = Path("witness"),
    key_file: Annotated[
        Path, typer.Option("--key-file", help="Checkpoint signing key (auditlog keygen)")
    ] = Path("auditlog.key"),
    api_keys: Annotated[
        Path, typer.Option("--api-keys", help='JSON {"keys": [{"sha256", "tenant", "principal"}]}')
    ] = Path("api-keys.json"),
    origin: Annotated[
        str | None, typer.Option("--origin", help="Log origin (default: the signing key's name)")
    ] = None,
    model_name: Annotated[str, typer.Option("--model-name")] = "auditlog-demo",
    device: Annotated[str, typer.Option("--device")] = "cpu",
    fail_open: Annotated[
        bool, typer.Option("--fail-open", help="Stream before records are durable (C21)")
    ] = False,
) -> None:
    """Serve /v1/completions, /v1/chat/completions and /v1/models, recording every request."""
    try:
        import uvicorn

        from auditlog.engine import LLMEngine  # noqa: F401  (fail early without the extra)
    except ImportError as exc:
        raise ConfigurationError(
            f"serve needs the engine extra: pip install 'auditlog[engine]' ({exc})"
        ) from exc
    from auditlog.ledger import Signer
    from auditlog.recorder import FailMode
    from auditlog.server import ApiKeyTable, ServerSettings, create_app

    if not key_file.exists():
        raise ConfigurationError(
            f"signing key {key_file} not found: create it with auditlog keygen"
        )
    signer = Signer.from_key_string(key_file.read_text().strip())
    witness_dir.mkdir(parents=True, exist_ok=True)
    db_url = _db_url(db)
    settings = ServerSettings(
        db_url=db_url,
        origin=origin or signer.name,
        signers=[signer],
        api_keys=ApiKeyTable.from_file(api_keys),
        witness_dir=witness_dir,
        spool_path=Path(f"{db}.spool") if "://" not in db else None,
        fail_mode=FailMode.OPEN if fail_open else FailMode.CLOSED,
        model_name=model_name,
        device=device,
    )
    typer.echo(f"auditlog serve: log {settings.origin} in {db_url} ({settings.fail_mode})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
