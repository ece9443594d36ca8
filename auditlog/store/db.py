"""Database engines and schema migrations, each in its home: :mod:`auditlog.store.engines`
(``create_db_engine``, the one place where auditlog opens a database; ``close_engine``) and
:mod:`auditlog.store.migrate` (``upgrade`` and the Alembic revisions). This module re-exports both.
"""

from __future__ import annotations

from auditlog.store.engines import (
    SQLITE_BUSY_TIMEOUT_MS,
    close_engine,
    create_db_engine,
    normalize_url,
)
from auditlog.store.migrate import (
    PARTITION_REVISION,
    alembic_config,
    current_revision,
    ensure_schema_current,
    existing_tables,
    head_revision,
    migrations_dir,
    upgrade,
)

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
    "migrations_dir",
    "normalize_url",
    "upgrade",
]
