"""Alerts: every alert raised for operators, with its numbers, link and outcome per channel.

Hand-written operations that build exactly the ``alerts`` table of
``poolwarden.adapters.schema.metadata`` (a test compares the migrated
database with the metadata).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", sa.String(1024), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("ip", sa.String(255), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_at", "alerts", ["at"])
    op.create_index("ix_alerts_tenant_id", "alerts", ["tenant", "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_tenant_id", table_name="alerts")
    op.drop_index("ix_alerts_at", table_name="alerts")
    op.drop_table("alerts")
