"""Warm-up state: each warming IP's or new domain's stage per provider, and today's counts.

Hand-written operations that build exactly the ``warmup_state`` and
``warmup_counts`` tables of ``poolwarden.adapters.schema.metadata`` (a test
compares the migrated database with the metadata).

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "warmup_state",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("scope_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("started_day", sa.Integer(), nullable=False),
        sa.Column("stage_day", sa.Integer(), nullable=False),
        sa.Column("judged_day", sa.Integer(), nullable=False),
        sa.Column("last_active_day", sa.Integer(), nullable=True),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "provider", name="pk_warmup_state"),
    )
    op.create_table(
        "warmup_counts",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("scope_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "provider", "day",
                                name="pk_warmup_counts"),
    )
    op.create_index("ix_warmup_counts_day", "warmup_counts", ["day"])


def downgrade() -> None:
    op.drop_index("ix_warmup_counts_day", table_name="warmup_counts")
    op.drop_table("warmup_counts")
    op.drop_table("warmup_state")
