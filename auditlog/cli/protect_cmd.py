"""``auditlog keyring create|export-tenant`` and ``auditlog erase`` (C14, C16)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auditlog.errors import ConfigurationError

__all__ = ["register"]

keyring_app = typer.Typer(help="Key-encryption keys of sealed payloads (local keyring file).")


@keyring_app.command("create")
def keyring_create(
    path: Annotated[Path, typer.Argument(help="Keyring file to create (mode 0600, never overwritten)")],
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="Give this tenant its own random KEK (repeatable); "
                     "without any, a master key derives every tenant's KEK"),
    ] = None,
) -> None:
    """Create a keyring of key-encryption keys. Keep it out of the database and its backups."""
    from auditlog.crypto import create_keyring

    create_keyring(path, tenants=tenant or None)
    typer.echo(f"created keyring {path}")


@keyring_app.command("export-tenant")
def keyring_export(
    source: Annotated[Path, typer.Argument(help="Keyring holding the tenant's KEK")],
    dest: Annotated[Path, typer.Argument(help="New keyring file with that tenant's KEK only")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant")],
) -> None:
    """Write a keyring holding one tenant's KEK: what that tenant's auditors are given."""
    from auditlog.crypto import export_tenant

    export_tenant(source, dest, tenant)
    typer.echo(f"wrote keyring {dest} for tenant {tenant}")


def erase(
    db: Annotated[str, typer.Option("--db", help="Database URL")],
    key_file: Annotated[
        Path, typer.Option("--key-file", help="Signing key of the administrative log")
    ],
    by: Annotated[str, typer.Option("--by", help="Who orders the erasure")],
    reason: Annotated[str, typer.Option("--reason", help="Why")],
    legal_basis: Annotated[
        str, typer.Option("--legal-basis", help='e.g. "GDPR Art. 17(1)(a)"')
    ],
    request: Annotated[
        list[str] | None, typer.Option("--request", help="Request id to erase (repeatable)")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="With --principal")] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Erase this principal's requests in --tenant")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Erase this principal id's requests in every tenant")
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="Administrative log for the record (default: the key's name)"),
    ] = None,
) -> None:
    """Crypto-shred requests' payloads: a signed erasure record, then their data keys go."""
    from auditlog.erasure import ErasureOrder
    from auditlog.erasure import erase as do_erase
    from auditlog.ledger import Signer
    from auditlog.store import create_db_engine

    try:
        signer = Signer.from_key_string(key_file.read_text().strip())
    except FileNotFoundError:
        raise ConfigurationError(f"key file {key_file} not found") from None
    order = ErasureOrder(
        by=by,
        reason=reason,
        legal_basis=legal_basis,
        request_ids=request or (),
        tenant=tenant,
        principal=principal,
        subject=subject,
    )
    engine = create_db_engine(db)
    try:
        result = do_erase(engine, order, signer=signer, origin=origin)
    finally:
        engine.dispose()
    typer.echo(
        f"erasure record {result.seq} of {result.origin}: erased {len(result.erased)} request(s): "
        + ", ".join(r for _, r in result.erased)
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keyring_app, name="keyring")
    app.command("erase")(erase)
