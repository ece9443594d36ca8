"""``auditlog db``: database schema management (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from auditlog.errors import ConfigurationError

from .options import DbOption, refuse_foreign_database

__all__ = ["register"]

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_cmd(
    db: DbOption,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="add the audit schema to a database that holds other tables"),
    ] = False,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=2,
            max=1024,
            help="PostgreSQL: create the ledger tables partitioned by log (HASH of log_id) "
            "into this many partitions; chosen once, at the first upgrade",
        ),
    ] = None,
) -> None:
    """Create or migrate the audit schema to the current version."""
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url

    from auditlog.store.db import current_revision, upgrade

    if partitions is not None and make_url(db).get_backend_name() != "postgresql":
        raise ConfigurationError("partitioning the ledger tables is a PostgreSQL feature")
    refuse_foreign_database(db, yes=yes)
    try:
        upgrade(db, partitions=partitions)
    except CommandError as exc:
        raise ConfigurationError(f"cannot migrate the database: {exc}") from None
    typer.echo(f"schema at revision {current_revision(db)}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
