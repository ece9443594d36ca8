"""Schema migrations: ``upgrade`` runs the Alembic migrations to head; they live in
``migrations/`` of the source tree and in ``auditlog/_migrations`` of an installed wheel. Alembic
is imported only when a migration function runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from auditlog.errors import ConfigurationError
from auditlog.store.engines import close_engine, create_db_engine

__all__ = [
    "PARTITION_REVISION",
    "alembic_config",
    "current_revision",
    "ensure_schema_current",
    "existing_tables",
    "head_revision",
    "migrations_dir",
    "upgrade",
]


def _engine_of(url_or_engine: str | URL | Engine, *, read_only: bool) -> tuple[Engine, bool]:
    """Return (engine, owned): owned engines are disposed of by the caller."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return create_db_engine(url_or_engine, read_only=read_only), True


def migrations_dir() -> Path:
    """Where the Alembic scripts are: in the wheel (``auditlog/_migrations``) or the source tree."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "_migrations", package_root.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError(f"Alembic migrations not found next to {package_root}")


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for auditlog's migrations, bound to ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connection(url_or_engine: str | URL | Engine, *, read_only: bool) -> Iterator[Connection]:
    engine, owned = _engine_of(url_or_engine, read_only=read_only)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        if owned:
            close_engine(engine)


#: The revision that partitions the ledger tables when asked (``upgrade(partitions=N)``).
PARTITION_REVISION = "0005_partition_by_log"


def upgrade(
    url_or_engine: str | URL | Engine, revision: str = "head", *, partitions: int | None = None
) -> None:
    """Run the migrations up to ``revision`` (default: head) in one transaction.

    ``partitions``: make the ledger tables ``PARTITION BY HASH (log_id)`` with that many
    partitions (PostgreSQL; revision ``0005_partition_by_log``). Raises ConfigurationError when
    that revision already ran with another choice. Creates the database file for a SQLite URL if
    it does not exist yet.
    """
    from alembic import command

    with _connection(url_or_engine, read_only=False) as conn:
        config = alembic_config(conn)
        if partitions is not None:
            _check_partitions_asked(conn, config, partitions)
            config.attributes["ledger_partitions"] = partitions
        command.upgrade(config, revision)


def _check_partitions_asked(conn: Connection, config: Any, partitions: int) -> None:
    """Refuse ``partitions`` for a database past the partitioning revision with another count."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from auditlog.store.partitions import ledger_partitions

    current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        return
    script = ScriptDirectory.from_config(config)
    applied = {rev.revision for rev in script.iterate_revisions(current, "base")}
    if PARTITION_REVISION not in applied:
        return
    found = {len(parts) for parts in ledger_partitions(conn).values()}
    if found != {partitions}:
        have = f"{found.pop()} partitions" if len(found) == 1 else "no partitions"
        raise ConfigurationError(
            f"the ledger tables were migrated with {have}, not {partitions}: partitioning is "
            "chosen at the first upgrade; copy the data (pg_dump) into a database upgraded with "
            f"--partitions {partitions}"
        )


def current_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated.

    A URL is opened read-only: a missing SQLite file raises ConfigurationError.
    """
    from alembic.runtime.migration import MigrationContext

    with _connection(url_or_engine, read_only=True) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def existing_tables(url_or_engine: str | URL | Engine) -> list[str]:
    """Names of the tables the database holds, sorted; a URL is opened read-only."""
    from sqlalchemy import inspect

    with _connection(url_or_engine, read_only=True) as conn:
        return sorted(inspect(conn).get_table_names())


def head_revision() -> str:
    """The newest revision this version of auditlog ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise ConfigurationError("no Alembic revision found")
    return head


def ensure_schema_current(url_or_engine: str | URL | Engine) -> None:
    """Raise ConfigurationError unless the database is migrated to this version's head."""
    current, head = current_revision(url_or_engine), head_revision()
    if current != head:
        raise ConfigurationError(
            f"database schema is at revision {current or 'none'}, this auditlog needs {head}: "
            "run `auditlog db upgrade`"
        )
