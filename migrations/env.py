"""Alembic environment for auditlog.

Run through ``auditlog.store.migrate.upgrade`` (or ``auditlog db upgrade``), which hands over an
open connection in ``config.attributes["connection"]``; the migration then runs inside that
caller's transaction. Offline mode (``--sql``) renders the DDL for the URL in ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from auditlog.errors import ConfigurationError
from auditlog.store.engines import create_db_engine
from auditlog.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigurationError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
