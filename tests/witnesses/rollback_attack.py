"""The database administrator's rollback (docs/TRUST.md section 2), shared by the rollback tests:
cut a log back to an earlier size with raw SQL, leaving no trace in the database."""

from __future__ import annotations

from typing import Any


def truncate_log(admin_connection: Any, size: int) -> None:
    """Delete every record, payload, node, checkpoint, cosignature and timestamp beyond ``size``
    records (append-only triggers disabled, as the superuser the attacker is)."""
    with admin_connection() as conn:
        for table in ("cosignatures", "timestamps", "checkpoints"):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE size > {size}")
        for table in ("payloads", "records"):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE seq >= {size}")
        for level in range(64):  # node (level, idx) covers leaves idx*2^level .. (idx+1)*2^level-1
            conn.exec_driver_sql(
                f"DELETE FROM nodes WHERE level = {level} AND idx >= {(size >> level)}"
            )
