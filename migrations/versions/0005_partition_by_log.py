"""Optionally partition the ledger tables by log (PostgreSQL declarative partitioning).

Revision ID: 0005_partition_by_log
Revises: 0004
Create Date: 2026-11-27

A no-op unless asked: ``auditlog db upgrade --partitions N`` (``upgrade(url, partitions=N)``, which
passes ``config.attributes["ledger_partitions"]``) rebuilds the six ledger tables as
``PARTITION BY HASH (log_id)`` parents with N partitions ``<table>_p0`` .. ``<table>_p<N-1>``.
Hash, not one LIST partition per log: a log is created by the writer role, which cannot (and must
not) run DDL, and a fixed set of partitions made here, each with its append-only trigger and
revoked privileges, leaves no partition that a later step could forget to guard (C9). Every row of
one log lands in one partition, so a log's reads and its Merkle tree stay in one table.

Rows already stored are copied into the new tables in the same transaction, byte for byte. The
writer role's grants are not carried over: run ``grant_writer`` (it grants on every partition)
again after partitioning an existing database. A frozen copy of ``store/schema.py``'s ledger
tables at revision 0004; later revisions MUST NOT edit it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from auditlog.errors import ConfigurationError

revision: str = "0005_partition_by_log"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Parents before children: the order of creation (and the reverse, of dropping).
_TABLES = ("records", "payloads", "nodes", "checkpoints", "cosignatures", "timestamps")
_PG_FUNCTION = "auditlog_reject_change"
_MAX_PARTITIONS = 1024
_BY_LOG = {"postgresql_partition_by": "HASH (log_id)"}


def _fk(table: str, columns: list[str], target: str) -> sa.ForeignKeyConstraint:
    refs = [f"{target}.{c}" for c in (columns if target != "logs" else ["id"])]
    name = f"fk_{table}_{'_'.join(columns)}_{target}"
    return sa.ForeignKeyConstraint(columns, refs, name=op.f(name))


def _create_records() -> None:
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
        _fk("records", ["log_id"], "logs"),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_records_seq_nonneg")),
        sa.CheckConstraint("length(leaf) = 32", name=op.f("ck_records_leaf_len")),
        **_BY_LOG,
    )
    op.create_index(
        op.f("ix_records_log_id_request_id_req_seq"), "records", ["log_id", "request_id", "req_seq"]
    )
    op.create_index(op.f("ix_records_tenant_ts"), "records", ["tenant", "ts"])
    op.create_index(op.f("ix_records_kind_ts"), "records", ["kind", "ts"])


def _create_payloads_and_nodes() -> None:
    op.create_table(
        "payloads",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_payloads")),
        _fk("payloads", ["log_id", "seq"], "records"),
        **_BY_LOG,
    )
    op.create_table(
        "nodes",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "level", "idx", name=op.f("pk_nodes")),
        _fk("nodes", ["log_id"], "logs"),
        sa.CheckConstraint("level > 0", name=op.f("ck_nodes_level_pos")),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_nodes_idx_nonneg")),
        sa.CheckConstraint("length(hash) = 32", name=op.f("ck_nodes_hash_len")),
        **_BY_LOG,
    )


def _create_checkpoint_tables() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_checkpoints")),
        _fk("checkpoints", ["log_id"], "logs"),
        sa.CheckConstraint("size >= 0", name=op.f("ck_checkpoints_size_nonneg")),
        sa.CheckConstraint("length(root) = 32", name=op.f("ck_checkpoints_root_len")),
        **_BY_LOG,
    )
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
        _fk("cosignatures", ["log_id", "size"], "checkpoints"),
        sa.CheckConstraint("timestamp >= 0", name=op.f("ck_cosignatures_timestamp_nonneg")),
        sa.CheckConstraint("length(signature) = 64", name=op.f("ck_cosignatures_signature_len")),
        **_BY_LOG,
    )
    op.create_table(
        "timestamps",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("gen_time", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_timestamps")),
        _fk("timestamps", ["log_id", "size"], "checkpoints"),
        **_BY_LOG,
    )


def _guard(table: str) -> None:
    """The append-only guard of 0001 on one table: a statement trigger (it fires for statements
    naming this table; a partition named directly is guarded by its own) and no UPDATE, DELETE,
    TRUNCATE for PUBLIC."""
    op.execute(
        f"CREATE TRIGGER {table}_append_only "
        f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
    )
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def _partitions_asked() -> int | None:
    asked = op.get_context().config.attributes.get("ledger_partitions")
    if asked is None:
        return None
    if op.get_context().dialect.name != "postgresql":
        raise ConfigurationError("partitioning the ledger tables is a PostgreSQL feature")
    if not isinstance(asked, int) or not 1 < asked <= _MAX_PARTITIONS:
        raise ConfigurationError(f"partitions must be 2..{_MAX_PARTITIONS}, got {asked!r}")
    return asked


def upgrade() -> None:
    partitions = _partitions_asked()
    if partitions is None:
        return
    for table in _TABLES:  # keep every row: copied back below, in the same transaction
        op.execute(f"CREATE TEMPORARY TABLE _keep_{table} ON COMMIT DROP AS TABLE {table}")
    for table in reversed(_TABLES):
        op.drop_table(table)  # dropping a table drops its triggers
    _create_records()
    _create_payloads_and_nodes()
    _create_checkpoint_tables()
    for table in _TABLES:
        for remainder in range(partitions):
            op.execute(
                f"CREATE TABLE {table}_p{remainder} PARTITION OF {table} "
                f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"
            )
            _guard(f"{table}_p{remainder}")
        _guard(table)
        op.execute(f"INSERT INTO {table} TABLE _keep_{table}")


def downgrade() -> None:
    """Un-partitioning is not done in place: a partitioned database stays partitioned."""
    if op.get_context().dialect.name != "postgresql":
        return
    partitioned = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'records' AND c.relnamespace = current_schema()::regnamespace"
    )
    if partitioned.scalar_one():
        raise ConfigurationError(
            "the ledger tables are partitioned: copy the database (pg_dump) into one migrated "
            "without partitions instead of downgrading"
        )
