"""Root fixtures: one freshly created, freshly migrated database per test, on SQLite and PostgreSQL.

``db_url`` is parametrized (``sqlite``, ``postgres``): a test that takes it runs on both. The
PostgreSQL server is the one named by ``AUDITLOG_TEST_PG_URL`` (a URL to a database the user may
``CREATE DATABASE`` from), else the local server over its Unix socket or 127.0.0.1:5432 as
``root``. Each test gets its own ``auditlog_test_<uuid>`` database, dropped afterwards.

``AUDITLOG_TEST_PG_PARTITIONS=N`` migrates every PostgreSQL test database with the ledger tables
partitioned by log into N partitions (``auditlog db upgrade --partitions N``), to run the whole
suite on partitioned tables.

Without a reachable server the postgres tests are skipped, unless ``AUDITLOG_TEST_PG_URL`` is set
or ``CI=true``: then they fail, so that CI never passes on SQLite alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from hypothesis import settings
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from auditlog.store.db import create_db_engine, normalize_url, upgrade
from auditlog.store.partitions import ledger_partitions
from auditlog.store.schema import LEDGER_TABLES

# Under CI, property tests draw the same examples on every run: a red CI is a reproducible one.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

PG_URL_ENV = "AUDITLOG_TEST_PG_URL"
DEFAULT_PG_URLS = (
    "postgresql+psycopg://root@/test?host=/var/run/postgresql",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
PG_CONNECT_TIMEOUT_S = 3
PG_PARTITIONS_ENV = "AUDITLOG_TEST_PG_PARTITIONS"


def _pg_answers(url: str) -> str | None:
    """None if the server at ``url`` answers a query, else why not."""
    engine = create_engine(
        normalize_url(url),
        poolclass=NullPool,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure to connect means "no server here"
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL database on a server where the tests may create databases."""
    configured = os.environ.get(PG_URL_ENV)
    candidates = (configured,) if configured else DEFAULT_PG_URLS
    reasons = []
    for url in candidates:
        reason = _pg_answers(url)
        if reason is None:
            return url
        reasons.append(f"{make_url(url).render_as_string(hide_password=True)}: {reason}")
    message = "no PostgreSQL server answers (" + "; ".join(reasons) + ")"
    if configured or os.environ.get("CI") == "true":
        pytest.fail(f"{message}; {PG_URL_ENV} is set or CI=true, so this is a failure")
    pytest.skip(f"{message}; set {PG_URL_ENV} to run the PostgreSQL tests")


@contextmanager
def _postgres_database(server_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it (even if in use)."""
    name = f"auditlog_test_{uuid.uuid4().hex}"
    server = normalize_url(server_url)
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def make_pg_database(pg_server_url: str) -> Callable[[], AbstractContextManager[str]]:
    """``with make_pg_database() as url:`` a new, empty PostgreSQL database (for fixtures wider
    than one test, e.g. a module's live server), dropped afterwards."""
    return lambda: _postgres_database(pg_server_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of a new, empty database (no tables), on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'audit.db'}"
        return
    with _postgres_database(request.getfixturevalue("pg_server_url")) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """URL of a new database migrated to head, on each backend in turn (PostgreSQL: partitioned
    when ``AUDITLOG_TEST_PG_PARTITIONS`` is set)."""
    partitions = os.environ.get(PG_PARTITIONS_ENV)
    postgres = not empty_db_url.startswith("sqlite")
    upgrade(empty_db_url, partitions=int(partitions) if partitions and postgres else None)
    return empty_db_url


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """A read-write auditlog engine on a new, migrated database."""
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def disable_append_only_triggers(conn: Connection) -> None:
    """Switch off the append-only guard (C9) as a malicious administrator would."""
    if conn.dialect.name == "sqlite":
        names = (
            conn.exec_driver_sql(
                "SELECT name FROM sqlite_master "
                "WHERE type = 'trigger' AND name LIKE '%append_only%'"
            )
            .scalars()
            .all()
        )
        for name in names:
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    else:
        partitions = [p for parts in ledger_partitions(conn).values() for p in parts]
        for table in (*LEDGER_TABLES, *partitions):  # a partition's own trigger is its own
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")


@pytest.fixture
def admin_connection(db_url: str) -> Iterator[Callable[[], AbstractContextManager[Connection]]]:
    """Open autocommit connections as the database's administrator with the triggers disabled.

    ``with admin_connection() as conn: conn.exec_driver_sql("UPDATE records ...")`` edits the
    ledger behind the application's back (plain driver connection, superuser on PostgreSQL), to
    test that the verifier catches it.
    """
    engine = create_engine(normalize_url(db_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")

    @contextmanager
    def open_admin() -> Iterator[Connection]:
        with engine.connect() as conn:
            disable_append_only_triggers(conn)
            yield conn

    yield open_admin
    engine.dispose()


def _set_pg_outage(db_url: str, *, down: bool) -> None:
    """Take a PostgreSQL database away for real: refuse new connections and kill the open ones
    (``down=False`` gives it back)."""
    url = normalize_url(db_url)
    admin = create_engine(
        url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        flag = "false" if down else "true"
        conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {flag}')
        if down:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{url.database}' AND pid <> pg_backend_pid()"
            )
    admin.dispose()


@pytest.fixture(scope="session")
def set_pg_outage() -> Callable[..., None]:
    """``set_pg_outage(url, down=True)``: a real outage of that PostgreSQL database."""
    return _set_pg_outage
