"""Driver-level bulk inserts: the hot path of a recorder flush (DESIGN.md section 6).

SQLAlchemy Core ``insert()`` with lists of dicts runs at about half the speed of the driver's own
``executemany``, so the flush goes straight to the DBAPI connection that SQLAlchemy holds for the
caller's transaction (``Connection.connection.driver_connection``):

- sqlite3: ``Connection.executemany`` with ``?`` placeholders;
- psycopg 3: ``COPY ... FROM STDIN`` (measured faster than pipelined ``executemany``, see
  ``bench/ledger_store.py``).

The rows join the caller's transaction; nothing here begins, commits or rolls back. A driver error
is raised as StoreError and leaves the transaction for the caller to roll back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from auditlog.errors import StoreError

__all__ = ["insert_rows"]

Row = tuple[Any, ...]


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` inside ``conn``'s transaction.

    ``table`` and ``columns`` MUST be trusted identifiers (they are written into the SQL).
    Raises StoreError when the database rejects a row (duplicate key, failed check, ...).
    """
    if not rows:
        return
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's autobegin would: the caller commits or rolls back
    dialect = conn.dialect.name
    driver_connection: Any = conn.connection.driver_connection
    column_list = ", ".join(columns)
    try:
        if dialect == "sqlite":
            placeholders = ", ".join("?" * len(columns))
            driver_connection.executemany(
                f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})", rows
            )
        elif dialect == "postgresql":
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            raise StoreError(f"bulk insert supports sqlite and postgresql, not {dialect}")
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StoreError(f"insert into {table} failed: {exc}") from exc
