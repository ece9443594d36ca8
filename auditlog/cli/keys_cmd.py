"""``auditlog keys``: create, revoke and list auditor API keys (only hashes are stored)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

from .options import DbOption
from .options import open_store as _open

__all__ = ["register"]


def _role(value: str) -> Any:
    from auditlog.api.keys import Role

    try:
        return Role(value)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ConfigurationError(f"unknown role {value!r}: expected one of {roles}") from None


def create(
    db: DbOption,
    role: Annotated[str, typer.Option("--role", help="auditor, operator or admin")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="tenant an auditor may read (repeat)")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="free text: who holds the key")] = "",
) -> None:
    """Create a key; its bearer token is printed once and never stored."""
    from auditlog.api.keys import check_scope, create_key

    chosen = _role(role)
    check_scope(chosen, tenant or [])  # before the database is opened for writing
    with _open(db) as engine, engine.begin() as conn:
        issued = create_key(conn, role=chosen, tenants=tenant or [], label=label)
    typer.echo(f"key id: {issued.key.id}", err=True)
    typer.echo(
        f"role:   {issued.key.role}  tenants: {', '.join(issued.key.tenants) or '-'}", err=True
    )
    typer.echo("token (shown once; store it now):", err=True)
    typer.echo(issued.token)


def revoke(db: DbOption, key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key at once (it stays listed, for the access records that name it)."""
    from auditlog.api.keys import revoke_key

    with _open(db) as engine, engine.begin() as conn:
        key = revoke_key(conn, key_id)
    typer.echo(f"revoked {key.id} at {key.revoked}")


def list_(
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """List every key (never secrets)."""
    import orjson

    from auditlog.api.keys import list_keys

    with _open(db, read_only=True) as engine, engine.connect() as conn:
        keys = list_keys(conn)
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
