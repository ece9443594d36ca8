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
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")] = 1,
) -> None:
    """Serve /v1/completions, /v1/chat/completions and /v1/models, recording every request."""
    try:
        import uvicorn

        from auditlog.engine import LLMEngine  # noqa: F401  (fail early without the extra)
    except ImportError as exc:
        raise ConfigurationError(
            f"serve needs the engine extra: pip install 'auditlog[engine]' ({exc})"
        ) from exc
    import torch

    from auditlog.ledger import Signer
    from auditlog.recorder import FailMode
    from auditlog.server import ApiKeyTable, ServerSettings, create_app

    # One intra-op thread by default: on a small machine more threads spin against the recorder
    # and the event loop (see the demo command).
    torch.set_num_threads(threads)

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


def client_key(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key's requests belong to")],
    principal: Annotated[str, typer.Option("--principal", help="Caller identity (C3)")],
    api_keys: Annotated[Path, typer.Option("--api-keys", help="Keys file of auditlog serve")] = (
        Path("api-keys.json")
    ),
) -> None:
    """Create an inference API key: its SHA-256 goes into the keys file, the key is printed once."""
    import json
    import os
    import secrets

    from auditlog.server import hash_api_key

    data: dict[str, list[dict[str, str]]] = {"keys": []}
    if api_keys.exists():
        try:
            data = json.loads(api_keys.read_text())
            entries = data["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{api_keys} is not a keys file: {exc}") from exc
    else:
        entries = data["keys"]
    key = "sk-audit-" + secrets.token_urlsafe(32)
    entries.append({"sha256": hash_api_key(key), "tenant": tenant, "principal": principal})
    tmp = api_keys.with_name(api_keys.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, api_keys)
    typer.echo(key)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("client-key")(client_key)
