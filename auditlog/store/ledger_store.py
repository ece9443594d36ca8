"""Reads and writes of a log's ledger: records, payloads, Merkle nodes, checkpoints, keys.

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction; none
of them commits (``with engine.begin() as conn: append_batch(conn, ...)``). A log has exactly one
writer, which owns its sequence numbers; this module does not lock.

This module gathers the ledger's store in one place; each concept has its own home:
:mod:`auditlog.store.log_registry` (the logs table), :mod:`auditlog.store.ledger_writes`
(appending a flush, resuming a log), :mod:`auditlog.store.ledger_reads` (records, payloads and
Merkle nodes), :mod:`auditlog.store.checkpoints` and :mod:`auditlog.store.keys`.
"""

from __future__ import annotations

from auditlog.store.checkpoints import (
    StoredCheckpoint,
    get_checkpoint,
    insert_checkpoint,
    latest_checkpoint,
    list_checkpoints,
)
from auditlog.store.keys import SigningKey, list_keys, register_key, retire_key
from auditlog.store.ledger_reads import (
    StoredNodeSource,
    StoredRecord,
    iter_records,
    read_record,
    read_request,
    request_id_used,
)
from auditlog.store.ledger_writes import (
    REQUEST_END_KIND,
    LogState,
    RecordLike,
    append_batch,
    load_log_state,
)
from auditlog.store.log_registry import LogInfo, ensure_log, get_log_id, list_logs

__all__ = [
    "REQUEST_END_KIND",
    "LogInfo",
    "LogState",
    "RecordLike",
    "SigningKey",
    "StoredCheckpoint",
    "StoredNodeSource",
    "StoredRecord",
    "append_batch",
    "ensure_log",
    "get_checkpoint",
    "get_log_id",
    "insert_checkpoint",
    "iter_records",
    "latest_checkpoint",
    "list_checkpoints",
    "list_keys",
    "list_logs",
    "load_log_state",
    "read_record",
    "read_request",
    "register_key",
    "request_id_used",
    "retire_key",
]
