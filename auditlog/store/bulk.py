"""Driver-level bulk inserts and streaming reads: the hot paths (docs/DESIGN.md section 6).

SQLAlchemy Core ``insert()`` with lists of dicts runs at about half the speed of the driver's own
``executemany``, so the flush goes straight to the DBAPI connection that SQLAlchemy holds for the
caller's transaction (``Connection.connection.driver_connection``):

- sqlite3: ``Connection.executemany`` of one multi-row ``INSERT`` (up to
  ``SQLITE_ROWS_PER_STATEMENT`` rows, each statement binds them all), the rows left over by the
  single-row statement: about a tenth less CPU per row than a single-row ``executemany``, and the
  driver releases and re-takes the GIL once per statement instead of once per row;
- psycopg 3: binary ``COPY ... FROM STDIN`` (measured about twice as fast as pipelined
  ``executemany``, see ``bench/ledger_store.py``).

``fetch_rows`` runs one query on the driver cursor and returns plain tuples, skipping SQLAlchemy's
result rows (about 2x faster when the verifier streams a log).

Both join the caller's transaction (beginning one, as SQLAlchemy's autobegin would, when none is
open); nothing here commits or rolls back. A driver error is raised as StoreError and leaves the
transaction for the caller to roll back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from itertools import chain
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, LargeBinary, String

from auditlog.errors import StoreError
from auditlog.store.schema import metadata

__all__ = ["SQLITE_ROWS_PER_STATEMENT", "fetch_rows", "insert_rows"]

Row = tuple[Any, ...]
#: Rows per multi-row SQLite INSERT (fewer where SQLITE_LIMIT_VARIABLE_NUMBER requires). Measured
#: on the recorder's rows: 16 and 64 rows cost more CPU than single-row executemany, 250 ~10% less.
SQLITE_ROWS_PER_STATEMENT = 250


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` inside ``conn``'s transaction.

    ``table`` and ``columns`` MUST be trusted identifiers (they are written into the SQL).
    Raises StoreError when the database rejects a row (duplicate key, failed check, ...).
    """
    if not rows:
        return
    dialect = conn.dialect.name
    driver_connection = _driver_connection(conn)
    column_list = ", ".join(columns)
    try:
        if dialect == "sqlite":
            _sqlite_insert(driver_connection, f"INSERT INTO {table} ({column_list})", columns, rows)
        elif dialect == "postgresql":
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(_postgres_types(table, tuple(columns)))
                for row in rows:
                    copy.write_row(row)
        else:
            raise StoreError(f"bulk insert supports sqlite and postgresql, not {dialect}")
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StoreError(f"insert into {table} failed: {exc}") from exc


def _sqlite_insert(
    driver_connection: Any, insert: str, columns: Sequence[str], rows: Sequence[Row]
) -> None:
    """``rows`` in statements of ``per_statement`` rows, then the rest one row per statement
    (two statements per table, so sqlite3's statement cache keeps both)."""
    width = len(columns)
    one_row = "(" + ", ".join("?" * width) + ")"
    variables = driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, variables // width))
    full = len(rows) - len(rows) % per_statement
    if full > 0 and per_statement > 1:
        driver_connection.executemany(
            f"{insert} VALUES {', '.join([one_row] * per_statement)}",
            [
                tuple(chain.from_iterable(rows[start : start + per_statement]))
                for start in range(0, full, per_statement)
            ],
        )
        rows = rows[full:]
    if rows:
        driver_connection.executemany(f"{insert} VALUES {one_row}", rows)


def fetch_rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Row]:
    """Run ``sql`` (``?`` placeholders, rewritten for psycopg) and return all its rows as tuples.

    ``sql`` MUST be a constant of the caller's: it is sent as written.
    """
    driver_connection = _driver_connection(conn)
    try:
        if conn.dialect.name == "sqlite":
            rows: list[Row] = driver_connection.execute(sql, params).fetchall()
            return rows
        with driver_connection.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StoreError(f"query failed: {exc}") from exc


def _driver_connection(conn: Connection) -> Any:
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's autobegin would: the caller commits or rolls back
    return conn.connection.driver_connection


@cache
def _postgres_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """PostgreSQL type names of ``columns`` for binary COPY, from the schema's column types."""
    names = []
    for column in columns:
        sql_type = metadata.tables[table].c[column].type
        if isinstance(sql_type, BigInteger):  # before Integer: BigInteger subclasses it
            names.append("int8")
        elif isinstance(sql_type, Integer):
            names.append("int4")
        elif isinstance(sql_type, LargeBinary):
            names.append("bytea")
        elif isinstance(sql_type, String):  # String, Text: the same binary wire format
            names.append("text")
        else:
            raise StoreError(f"no binary COPY type for {table}.{column} ({sql_type})")
    return names
