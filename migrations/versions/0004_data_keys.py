"""Wrapped per-request data keys of sealed payloads (C16).

Revision ID: 0004
Revises: 0003_external_anchors
Create Date: 2026-11-27

A frozen copy of ``auditlog/store/schema.py``'s ``data_keys`` table at revision 0004. Not a ledger
table (no append-only trigger): deleting a row crypto-shreds a request's payloads.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003_external_anchors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("log_id", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("kek_id", sa.String(300), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name=op.f("fk_data_keys_log_id_logs")),
        sa.PrimaryKeyConstraint("log_id", "request_id", name=op.f("pk_data_keys")),
    )


def downgrade() -> None:
    op.drop_table("data_keys")
