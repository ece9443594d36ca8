"""Database engines and schema migrations.

``create_db_engine`` is the one place where auditlog opens a database:

- SQLite: a file database only, in WAL mode with ``synchronous=FULL`` (a commit is durable once it
  returns), ``foreign_keys=ON``, ``recursive_triggers=ON`` (so that ``INSERT OR REPLACE`` cannot
  delete a ledger row behind the append-only triggers) and a busy timeout. Transactions start with
  an explicit ``BEGIN`` when SQLAlchemy begins one, so reads inside a transaction see one snapshot.
  A read-only engine opens the file with ``mode=ro`` and MUST NOT create a missing database; on
  read-only storage (the directory cannot be written and no write-ahead log is pending) it adds
  ``immutable=1``, so that SQLite needs no ``-shm`` file. :func:`close_engine` leaves a SQLite
  database in rollback-journal mode, so a finished writer leaves only the database file and
  readers create no ``-wal``/``-shm`` files (the next writer switches back to WAL).
- PostgreSQL through psycopg 3 (``postgresql+psycopg://``; ``postgresql://`` is rewritten to it).
  A read-only engine sets ``default_transaction_read_only`` for its sessions; that guards against
  mistakes, the grants of ``store/roles.py`` are what an attacker meets.

``upgrade`` runs the Alembic migrations to head; they live in ``migrations/`` of the source tree and
in ``auditlog/_migrations`` of an installed wheel.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool

from auditlog.errors import ConfigurationError

__all__ = [
    "PARTITION_REVISION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "alembic_config",
    "close_engine",
    "create_db_engine",
    "current_revision",
    "ensure_schema_current",
    "existing_tables",
    "head_revision",
    "normalize_url",
    "upgrade",
]

#: How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000

_PG_DRIVER = "postgresql+psycopg"
_READ_ONLY = "auditlog_read_only"
_PG_ALIASES = {"postgresql", "postgres", "postgresql+psycopg"}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and rewrite PostgreSQL URLs to the psycopg 3 driver.

    Raises ConfigurationError for an unparseable URL or a backend other than SQLite/PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in _PG_ALIASES:
        return parsed.set(drivername=_PG_DRIVER)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigurationError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "expected sqlite:///<file> or postgresql+psycopg://..."
    )


def create_db_engine(url: str | URL, *, read_only: bool = False, echo: bool = False) -> Engine:
    """Open an engine for ``url`` configured for auditlog (module docstring).

    Raises ConfigurationError for an unsupported URL, an in-memory SQLite database, a missing
    SQLite file when ``read_only`` is true, or a missing psycopg for PostgreSQL.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, read_only=read_only, echo=echo)
    return _postgres_engine(parsed, read_only=read_only, echo=echo)


def _sqlite_engine(url: URL, *, read_only: bool, echo: bool) -> Engine:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigurationError(
            f"SQLite URL must name a database file (sqlite:///<path>), got {url!s}"
        )
    path = Path(database).expanduser().resolve()
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory, not a database file")
    if read_only and not path.is_file():
        raise ConfigurationError(f"database file does not exist: {path}")
    if not read_only and not path.parent.is_dir():
        raise ConfigurationError(f"directory of the database file does not exist: {path.parent}")
    # mode=ro: the file is never created nor written; mode=rwc: created on first use.
    uri = f"file:{urllib.parse.quote(str(path))}?mode={'ro' if read_only else 'rwc'}"
    if read_only and _on_read_only_storage(path):
        uri += "&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            uri,
            uri=True,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,  # the pool hands a connection to one thread at a time
            isolation_level=None,  # SQLAlchemy's "begin" event below emits BEGIN itself
        )

    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        creator=connect,
        poolclass=QueuePool,
        echo=echo,
        execution_options={_READ_ONLY: read_only},  # close_engine leaves a reader's file alone
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not read_only:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA recursive_triggers=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _on_read_only_storage(path: Path) -> bool:
    """True when nobody can be writing ``path`` through its directory: the directory is not
    writable to us, or has no write permission for anyone (an evidence copy made read-only, which
    even root should not change), and no write-ahead log is pending (a non-empty ``-wal`` file
    must be read, so the file is not immutable then)."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return False
    directory = path.parent
    return not os.access(directory, os.W_OK) or not directory.stat().st_mode & 0o222


def close_engine(engine: Engine) -> None:
    """Dispose of a writer's engine; a SQLite database is left in rollback-journal mode.

    With no connection left, SQLite folds the write-ahead log into the database and removes the
    ``-wal`` and ``-shm`` files; in rollback-journal mode a later read-only reader creates none
    either. If another process still has the database open, it stays in WAL mode.
    """
    if engine.dialect.name == "sqlite" and not engine.get_execution_options().get(_READ_ONLY):
        raw = engine.raw_connection()  # outside any transaction: the journal mode can change
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA journal_mode=DELETE")
            cursor.close()
        except sqlite3.Error:
            pass  # another connection is open: it keeps WAL mode, and its files
        finally:
            raw.close()
    engine.dispose()


def _postgres_engine(url: URL, *, read_only: bool, echo: bool) -> Engine:
    try:
        import psycopg  # noqa: F401  (only to give a clear error when the extra is missing)
    except ImportError as exc:
        raise ConfigurationError(
            "PostgreSQL needs psycopg 3: pip install 'auditlog[postgres]'"
        ) from exc
    connect_args: dict[str, Any] = {}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, echo=echo)


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
