"""The SQL store: schema, engines and migrations, and the ledger's reads and writes.

SQLAlchemy 2.0 Core on SQLite or PostgreSQL (psycopg 3); Alembic migrations in ``migrations/``.
Every function takes a ``Connection`` and runs in the caller's transaction.
"""

from __future__ import annotations

from auditlog.store.admin_reads import (
    ProvenLog,
    UnprovenAdminLogError,
    proven_admin_logs,
    reader_admin_logs,
)
from auditlog.store.checkpoints import (
    StoredCheckpoint,
    get_checkpoint,
    insert_checkpoint,
    latest_checkpoint,
    list_checkpoints,
)
from auditlog.store.data_keys import (
    bodies_of_kind,
    delete_data_keys,
    erasure_bodies,
    insert_data_keys,
    keyed_requests,
    purge_freed_keys,
    read_data_key,
    read_data_keys,
)
from auditlog.store.engines import close_engine, create_db_engine, normalize_url, one_snapshot
from auditlog.store.keys import SigningKey, list_keys, register_key, retire_key
from auditlog.store.ledger_reads import (
    StoredNodeSource,
    StoredRecord,
    iter_records,
    read_record,
    read_request,
    request_id_used,
)
from auditlog.store.ledger_writes import LogState, append_batch, load_log_state
from auditlog.store.log_registry import LogInfo, ensure_log, get_log_id, list_logs
from auditlog.store.migrate import (
    current_revision,
    ensure_schema_current,
    head_revision,
    upgrade,
)
from auditlog.store.roles import grant_writer
from auditlog.store.tenant_reads import proven_tenants
from auditlog.store.writer_lock import WriterLock, WriterLockError

__all__ = [
    "LogInfo",
    "LogState",
    "ProvenLog",
    "SigningKey",
    "StoredCheckpoint",
    "StoredNodeSource",
    "StoredRecord",
    "UnprovenAdminLogError",
    "WriterLock",
    "WriterLockError",
    "append_batch",
    "bodies_of_kind",
    "close_engine",
    "create_db_engine",
    "current_revision",
    "delete_data_keys",
    "ensure_log",
    "ensure_schema_current",
    "erasure_bodies",
    "get_checkpoint",
    "get_log_id",
    "grant_writer",
    "head_revision",
    "insert_checkpoint",
    "insert_data_keys",
    "iter_records",
    "keyed_requests",
    "latest_checkpoint",
    "list_checkpoints",
    "list_keys",
    "list_logs",
    "load_log_state",
    "normalize_url",
    "one_snapshot",
    "proven_admin_logs",
    "proven_tenants",
    "purge_freed_keys",
    "read_data_key",
    "read_data_keys",
    "read_record",
    "read_request",
    "reader_admin_logs",
    "register_key",
    "request_id_used",
    "retire_key",
    "upgrade",
]
