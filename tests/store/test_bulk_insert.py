"""Driver-level bulk inserts: every row lands once, in chunks of any size, on both backends."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import Connection, Engine

from auditlog.errors import StoreError
from auditlog.store.bulk import SQLITE_ROWS_PER_STATEMENT, fetch_rows, insert_rows
from auditlog.store.ledger_store import ensure_log

COLUMNS = ("log_id", "level", "idx", "hash")
SIZES = [
    1,
    SQLITE_ROWS_PER_STATEMENT - 1,
    SQLITE_ROWS_PER_STATEMENT,
    2 * SQLITE_ROWS_PER_STATEMENT + 7,
]


def _nodes(log_id: int, n: int) -> list[tuple[int, int, int, bytes]]:
    return [(log_id, 8, i, i.to_bytes(32, "big")) for i in range(n)]


def _stored(conn: Connection, log_id: int) -> list[tuple[int, int, int, bytes]]:
    rows = fetch_rows(
        conn, "SELECT log_id, level, idx, hash FROM nodes WHERE log_id = ? ORDER BY idx", (log_id,)
    )
    return [(a, b, c, bytes(h)) for a, b, c, h in rows]


@pytest.mark.parametrize("n", SIZES)
def test_insert_rows_stores_every_row_once(migrated_engine: Engine, n: int) -> None:
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, "bulk.example/log")
        insert_rows(conn, "nodes", COLUMNS, _nodes(log_id, n))
    with migrated_engine.connect() as conn:
        assert _stored(conn, log_id) == _nodes(log_id, n)


def test_insert_rows_refuses_a_duplicate_inside_a_full_statement(migrated_engine: Engine) -> None:
    rows = _nodes(1, 2 * SQLITE_ROWS_PER_STATEMENT)
    rows[SQLITE_ROWS_PER_STATEMENT // 2] = rows[3]  # a duplicate key in the first chunk
    with migrated_engine.connect() as conn:
        with conn.begin():
            log_id = ensure_log(conn, "bulk.example/log")
        assert log_id == 1
        with pytest.raises(StoreError, match="insert into nodes failed"), conn.begin():
            insert_rows(conn, "nodes", COLUMNS, rows)
        assert _stored(conn, log_id) == []  # the caller's rollback left nothing


def test_sqlite_statements_stay_within_the_variable_limit(migrated_engine: Engine) -> None:
    if migrated_engine.dialect.name != "sqlite":
        pytest.skip("a limit of the SQLite library")
    with migrated_engine.begin() as conn:
        log_id = ensure_log(conn, "bulk.example/log")
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        old = driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # two rows of four
        try:
            insert_rows(conn, "nodes", COLUMNS, _nodes(log_id, 7))
        finally:
            driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, old)
    with migrated_engine.connect() as conn:
        assert _stored(conn, log_id) == _nodes(log_id, 7)
