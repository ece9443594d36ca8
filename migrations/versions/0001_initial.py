"""Initial schema: logs, records, payloads, nodes, checkpoints, signing_keys; append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

A frozen copy of ``auditlog/store/schema.py`` at revision 0001 (later revisions MUST NOT edit it).
The append-only guard (docs/COMPLIANCE.md C9) rejects UPDATE and DELETE on the ledger tables:

- SQLite: BEFORE UPDATE / BEFORE DELETE row triggers that RAISE(ABORT, ...). They also fire for
  UPSERT and, with ``PRAGMA recursive_triggers=ON`` (set by ``create_db_engine``), for the row that
  ``INSERT OR REPLACE`` would delete.
- PostgreSQL: a BEFORE UPDATE OR DELETE OR TRUNCATE statement trigger calling a plpgsql function
  that raises, and UPDATE, DELETE, TRUNCATE revoked from PUBLIC. The writer role gets INSERT and
  SELECT only (``auditlog.store.roles.grant_writer``), so it cannot change rows even with the
  triggers disabled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auditlog.errors import ConfigurationError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "auditlog: ledger tables are append-only"
_LEDGER_TABLES = ("records", "payloads", "nodes", "checkpoints")
_PG_FUNCTION = "auditlog_reject_change"


def _create_tables() -> None:
    op.create_table(
        "logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
        sa.UniqueConstraint("origin", name=op.f("uq_logs_origin")),
    )
    op.create_table(
        "records",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(255), nullable=True),
        sa.Column("req_seq", sa.BigInteger, nullable=True),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("leaf", sa.LargeBinary(32), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_records")),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_records_log_id_logs")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_records_seq_nonneg")),
        sa.CheckConstraint("length(leaf) = 32", name=op.f("ck_records_leaf_len")),
    )
    op.create_index(
        op.f("ix_records_log_id_request_id_req_seq"), "records", ["log_id", "request_id", "req_seq"]
    )
    op.create_index(op.f("ix_records_tenant_ts"), "records", ["tenant", "ts"])
    op.create_index(op.f("ix_records_kind_ts"), "records", ["kind", "ts"])
    op.create_table(
        "payloads",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_payloads")),
        sa.ForeignKeyConstraint(
            ["log_id", "seq"],
            ["records.log_id", "records.seq"],
            name=op.f("fk_payloads_log_id_seq_records"),
        ),
    )
    op.create_table(
        "nodes",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "level", "idx", name=op.f("pk_nodes")),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_nodes_log_id_logs")),
        sa.CheckConstraint("level > 0", name=op.f("ck_nodes_level_pos")),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_nodes_idx_nonneg")),
        sa.CheckConstraint("length(hash) = 32", name=op.f("ck_nodes_hash_len")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_checkpoints")),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_checkpoints_log_id_logs")),
        sa.CheckConstraint("size >= 0", name=op.f("ck_checkpoints_size_nonneg")),
        sa.CheckConstraint("length(root) = 32", name=op.f("ck_checkpoints_root_len")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("key_name", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("verifier_key", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("retired", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("log_id", "key_name", "key_id", name=op.f("pk_signing_keys")),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_signing_keys_log_id_logs")),
    )


def _create_sqlite_triggers() -> None:
    for table in _LEDGER_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{operation.lower()} "
                f"BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def _create_postgresql_triggers() -> None:
    op.execute(
        f"CREATE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        f"  RAISE EXCEPTION '{_MESSAGE} (% on %)', TG_OP, TG_TABLE_NAME\n"
        "    USING ERRCODE = 'insufficient_privilege';\n"
        "END\n"
        "$$"
    )
    for table in _LEDGER_TABLES:
        # A statement trigger fires even when no row matches, and is the only kind TRUNCATE has.
        op.execute(
            f"CREATE TRIGGER {table}_append_only "
            f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
        )
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def upgrade() -> None:
    _create_tables()
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        _create_sqlite_triggers()
    elif dialect == "postgresql":
        _create_postgresql_triggers()
    else:
        raise ConfigurationError(f"auditlog supports SQLite and PostgreSQL, not {dialect}")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for table in ("signing_keys", "checkpoints", "nodes", "payloads", "records", "logs"):
        op.drop_table(table)  # dropping a table drops its triggers on both backends
    if dialect == "postgresql":
        op.execute(f"DROP FUNCTION {_PG_FUNCTION}()")
