"""PostgreSQL grants for the writer role (C9, C17).

The writer (the recorder's database role) MUST be a role other than the owner of the tables, which
ran the migrations: the owner can alter or drop its own tables, whatever the grants say. The writer
gets INSERT and SELECT on the ledger tables and nothing else, so it cannot UPDATE, DELETE or
TRUNCATE a ledger row even where an administrator has disabled the append-only triggers.
"""

from __future__ import annotations

from sqlalchemy import Connection

from auditlog.errors import ConfigurationError
from auditlog.store.partitions import ledger_partitions
from auditlog.store.schema import LEDGER_TABLES

__all__ = ["WRITER_SEQUENCES", "grant_writer"]

#: Sequences the writer draws from (``logs.id`` is SERIAL).
WRITER_SEQUENCES: tuple[str, ...] = ("logs_id_seq",)


def grant_writer(conn: Connection, role: str) -> None:
    """Grant ``role`` what a recorder needs, in the caller's transaction (PostgreSQL only).

    Ledger tables, each of their partitions (``auditlog db upgrade --partitions``), and ``logs``:
    INSERT, SELECT. ``signing_keys``: INSERT, SELECT and UPDATE of the
    ``retired`` column only. ``data_keys``: INSERT, SELECT (deleting is erasure, not the
    writer's). ``alembic_version``: SELECT (to check the schema revision).
    Raises ConfigurationError on another database.
    """
    if conn.dialect.name != "postgresql":
        raise ConfigurationError(f"roles are a PostgreSQL feature, not {conn.dialect.name}'s")
    quote = conn.dialect.identifier_preparer.quote
    grantee = quote(role)
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {grantee}")
    partitions = [p for parts in ledger_partitions(conn).values() for p in parts]
    for table in (*LEDGER_TABLES, *partitions, "logs"):
        conn.exec_driver_sql(f"GRANT INSERT, SELECT ON {quote(table)} TO {grantee}")
    conn.exec_driver_sql(f"GRANT INSERT, SELECT, UPDATE (retired) ON signing_keys TO {grantee}")
    # Wrapped data keys: the writer adds them; only `auditlog erase` (the owner) deletes (C16).
    conn.exec_driver_sql(f"GRANT INSERT, SELECT ON data_keys TO {grantee}")
    conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {grantee}")
    for sequence in WRITER_SEQUENCES:
        conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {sequence} TO {grantee}")
