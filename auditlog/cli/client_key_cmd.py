"""``auditlog client-key``: an inference API key for the keys file of ``auditlog serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import parse_tenant, read_text_file

__all__ = ["register"]


def client_key(
    tenant: Annotated[
        str,
        typer.Option("--tenant", help="Tenant the key's requests belong to", parser=parse_tenant),
    ],
    principal: Annotated[str, typer.Option("--principal", help="Caller identity (C3)")],
    api_keys: Annotated[Path, typer.Option("--api-keys", help="Keys file of auditlog serve")] = (
        Path("api-keys.json")
    ),
) -> None:
    """Create an inference API key: its SHA-256 goes into the keys file, the key is printed once."""
    import json
    import os
    import secrets

    from auditlog.server import ApiKeyTable, hash_api_key

    data: dict[str, list[dict[str, str]]] = {"keys": []}
    if api_keys.exists():
        ApiKeyTable.from_file(api_keys)  # refuses a file that is not a valid keys file
        data = json.loads(read_text_file(api_keys, "API keys file"))
    entries = data["keys"]
    key = "sk-audit-" + secrets.token_urlsafe(32)
    ApiKeyTable.from_plain_keys({key: (tenant, principal)})  # checks the principal, too
    entries.append({"sha256": hash_api_key(key), "tenant": tenant, "principal": principal})
    tmp = api_keys.with_name(api_keys.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, api_keys)
    typer.echo(key)


def register(app: typer.Typer) -> None:
    app.command("client-key")(client_key)
