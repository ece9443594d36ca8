"""Database engines: ``create_db_engine`` is the one place where auditlog opens a database.

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
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool

from auditlog.errors import ConfigurationError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "close_engine",
    "create_db_engine",
    "normalize_url",
    "one_snapshot",
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


def one_snapshot(conn: Connection) -> Connection:
    """``conn``, reading one snapshot of the database in every statement of its transaction:
    a reader that counts rows in one statement and reads them in others (the verifier) must see
    the same rows while a writer commits, on a primary or a streaming replica. PostgreSQL's
    default READ COMMITTED gives each statement a new snapshot, so the transaction is REPEATABLE
    READ; a SQLite transaction reads one snapshot already. Call it before the first statement."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn
