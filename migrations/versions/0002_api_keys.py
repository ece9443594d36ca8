"""API keys of the auditor API: hashed secrets, roles and tenant scopes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

A frozen copy of ``auditlog/api/keys.py``'s ``api_keys`` table at revision 0002 (later revisions
MUST NOT edit it). Only the SHA-256 of a key's secret is stored, never the secret (C17). Keys are
revoked by setting ``revoked`` once; rows are never deleted, so that every ``access`` record's key
id stays resolvable for the whole retention period.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenants", sa.Text, nullable=False),
        sa.Column("label", sa.String(255), nullable=False, server_default=""),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.CheckConstraint(
            "role IN ('auditor', 'operator', 'admin')", name=op.f("ck_api_keys_role_known")
        ),
        sa.CheckConstraint("length(key_hash) = 64", name=op.f("ck_api_keys_key_hash_len")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
