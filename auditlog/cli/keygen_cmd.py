"""``auditlog keygen``: create an Ed25519 checkpoint signing key (C2SP note key format)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from auditlog.errors import ConfigurationError

__all__ = ["register"]


def keygen(
    name: Annotated[
        str, typer.Argument(help="Key name, usually the log origin, e.g. example.com/log")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Private key file to create (mode 0600)")
    ],
) -> None:
    """Write a private signing key to OUT (never overwritten) and print its verifier key."""
    from auditlog.ledger import Signer

    signer = Signer.generate(name)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigurationError(f"{out} exists; refusing to overwrite a signing key") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.key_string + "\n")
    typer.echo(signer.verifier_key)


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen)
