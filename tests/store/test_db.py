"""Engine creation: SQLite pragmas, read-only engines, URL handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from store_helpers import TrailBuilder

from auditlog.errors import ConfigurationError
from auditlog.store.db import create_db_engine, normalize_url
from auditlog.store.ledger_store import append_batch, ensure_log, iter_records


def test_sqlite_engine_is_durable_wal(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "recursive_triggers")
            }
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        engine.dispose()
    # synchronous: 2 = FULL
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "recursive_triggers": 1,
    }


def test_sqlite_transactions_roll_back(migrated_engine: Engine) -> None:
    """The explicit BEGIN really wraps driver-level inserts: a rolled back flush leaves nothing."""
    t = TrailBuilder("log")
    t.start("r1")
    with migrated_engine.connect() as conn:
        log_id = ensure_log(conn, "log")
        conn.commit()
        append_batch(conn, log_id, t.records)
        conn.rollback()
        assert list(iter_records(conn, log_id)) == []


def test_read_only_sqlite_refuses_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(ConfigurationError, match="database file does not exist"):
        create_db_engine(f"sqlite:///{path}", read_only=True)
    assert not path.exists()


def test_read_only_engine_refuses_writes(db_url: str, migrated_engine: Engine) -> None:
    t = TrailBuilder("log")
    t.start("r1")
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, "log")
        append_batch(conn, log_id, t.records)
    reader = create_db_engine(db_url, read_only=True)
    try:
        with reader.connect() as conn:
            assert [r.seq for r in iter_records(conn, log_id)] == [0]
        with pytest.raises(DBAPIError, match=r"read-?only"), reader.begin() as conn:
            conn.execute(text("INSERT INTO logs (origin, created) VALUES ('x', 1)"))
    finally:
        reader.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url).render_as_string() == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported database URL scheme 'mysql'"),
        ("postgresql+psycopg2://u@h/db", "unsupported database URL scheme"),
        ("not a url", "not a database URL"),
        ("sqlite://", "must name a database file"),
        ("sqlite:///:memory:", "must name a database file"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_db_engine(url)


def test_sqlite_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="directory of the database file does not exist"):
        create_db_engine(f"sqlite:///{tmp_path / 'no' / 'a.db'}")
