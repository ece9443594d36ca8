"""Anchors outside the operator's reach: witness cosignatures (C2SP tlog-cosignature) and
RFC 3161 timestamp tokens of checkpoints, both append-only.

Revision ID: 0003_external_anchors
Revises: 0002
Create Date: 2026-11-27

A frozen copy of ``auditlog/store/schema.py``'s ``cosignatures`` and ``timestamps`` tables at
this revision (later revisions MUST NOT edit it). Both are ledger tables: the same append-only
guard as 0001's (C9) rejects UPDATE and DELETE on them, reusing 0001's PostgreSQL trigger
function.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auditlog.errors import ConfigurationError

revision: str = "0003_external_anchors"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("cosignatures", "timestamps")
_MESSAGE = "auditlog: ledger tables are append-only"
_PG_FUNCTION = "auditlog_reject_change"


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("witness", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "log_id", "size", "witness", "key_id", name=op.f("pk_cosignatures")
        ),
        sa.ForeignKeyConstraint(
            ["log_id", "size"],
            ["checkpoints.log_id", "checkpoints.size"],
            name=op.f("fk_cosignatures_log_id_size_checkpoints"),
        ),
        sa.CheckConstraint("timestamp >= 0", name=op.f("ck_cosignatures_timestamp_nonneg")),
        sa.CheckConstraint("length(signature) = 64", name=op.f("ck_cosignatures_signature_len")),
    )
    op.create_table(
        "timestamps",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("gen_time", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_timestamps")),
        sa.ForeignKeyConstraint(
            ["log_id", "size"],
            ["checkpoints.log_id", "checkpoints.size"],
            name=op.f("fk_timestamps_log_id_size_checkpoints"),
        ),
    )
    dialect = op.get_context().dialect.name
    for table in _TABLES:
        if dialect == "sqlite":
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{operation.lower()} "
                    f"BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
                )
        elif dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_append_only "
                f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")
        else:
            raise ConfigurationError(f"auditlog supports SQLite and PostgreSQL, not {dialect}")


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)  # dropping a table drops its triggers on both backends
