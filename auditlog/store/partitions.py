"""The partitions of the ledger tables, read from the PostgreSQL catalog.

``auditlog db upgrade --partitions N`` (revision ``0005_partition_by_log``) makes each ledger table
a ``PARTITION BY HASH (log_id)`` parent with N partitions; a database migrated without it has none.
The grants of ``store/roles.py`` and the checks of ``db.upgrade`` read the partitions from here.
"""

from __future__ import annotations

from sqlalchemy import Connection

from auditlog.store.schema import LEDGER_TABLES

__all__ = ["ledger_partitions"]

_PARTITIONS_OF = """
SELECT parent.relname, child.relname
FROM pg_inherits i
JOIN pg_class parent ON parent.oid = i.inhparent
JOIN pg_class child ON child.oid = i.inhrelid
WHERE parent.relnamespace = current_schema()::regnamespace AND parent.relkind = 'p'
ORDER BY parent.relname, child.relname
"""


def ledger_partitions(conn: Connection) -> dict[str, list[str]]:
    """Each partitioned ledger table and its partitions (sorted); empty when none is partitioned
    or on SQLite."""
    if conn.dialect.name != "postgresql":
        return {}
    found: dict[str, list[str]] = {}
    for parent, child in conn.exec_driver_sql(_PARTITIONS_OF):
        if parent in LEDGER_TABLES:
            found.setdefault(parent, []).append(child)
    return found
