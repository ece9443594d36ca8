"""``auditlog keys``: create, revoke and list auditor API keys (only hashes are stored)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from auditlog.api.keys import Role, create_key, list_keys, revoke_key
from auditlog.errors import AuditlogError
from auditlog.store.db import create_db_engine

__all__ = ["register"]

EXIT_USAGE = 2

DbOption = Annotated[
    str, typer.Option("--db", envvar="AUDITLOG_DB_URL", help="database URL of the audit store")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"auditlog keys: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def create(
    db: DbOption,
    role: Annotated[Role, typer.Option("--role", help="auditor, operator or admin")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="tenant an auditor may read (repeat)")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="free text: who holds the key")] = "",
) -> None:
    """Create a key; its bearer token is printed once and never stored."""
    engine = create_db_engine(db)
    try:
        with engine.begin() as conn:
            issued = create_key(conn, role=role, tenants=tenant or [], label=label)
    except AuditlogError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"key id: {issued.key.id}", err=True)
    typer.echo(
        f"role:   {issued.key.role}  tenants: {', '.join(issued.key.tenants) or '-'}", err=True
    )
    typer.echo("token (shown once; store it now):", err=True)
    typer.echo(issued.token)


def revoke(db: DbOption, key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key at once (it stays listed, for the access records that name it)."""
    engine = create_db_engine(db)
    try:
        with engine.begin() as conn:
            key = revoke_key(conn, key_id)
    except AuditlogError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"revoked {key.id} at {key.revoked}")


def list_(
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """List every key (never secrets)."""
    engine = create_db_engine(db, read_only=True)
    try:
        with engine.connect() as conn:
            keys = list_keys(conn)
    finally:
        engine.dispose()
    rows = [
        {
            "id": k.id,
            "role": str(k.role),
            "tenants": list(k.tenants),
            "label": k.label,
            "created": k.created,
            "revoked": k.revoked,
        }
        for k in keys
    ]
    if as_json:
        typer.echo(orjson.dumps(rows).decode())
        return
    for k in keys:
        state = "revoked" if k.is_revoked else "active"
        typer.echo(f"{k.id}  {k.role:<8}  {state:<7}  {','.join(k.tenants) or '-'}  {k.label}")


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    keys = typer.Typer(help="Manage auditor API keys.", no_args_is_help=True)
    keys.command("create")(create)
    keys.command("revoke")(revoke)
    keys.command("list")(list_)
    app.add_typer(keys, name="keys")
