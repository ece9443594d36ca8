"""``auditlog db``: database schema management (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_cmd(
    db: Annotated[str, typer.Option("--db", envvar="AUDITLOG_DB_URL", help="Database URL")],
) -> None:
    """Create or migrate the audit schema to the current version."""
    from auditlog.store import current_revision, upgrade

    upgrade(db)
    typer.echo(f"schema at revision {current_revision(db)}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
