"""Feedback mail: every bounce, complaint and auto-reply received, trusted or not.

Hand-written operations that build exactly the ``feedback`` table of
``poolwarden.adapters.schema.metadata`` (a test compares the migrated
database with the metadata).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("ip", sa.String(255), nullable=True),
        sa.Column("recipient", sa.String(1024), nullable=True),
        sa.Column("message_ref", sa.String(255), nullable=True),
        sa.Column("message_id", sa.String(1024), nullable=True),
        sa.Column("bounce_reason", sa.String(255), nullable=True),
        sa.Column("bounce_class", sa.String(255), nullable=True),
        sa.Column("dsn_status", sa.String(255), nullable=True),
        sa.Column("feedback_type", sa.String(255), nullable=True),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("key", name="uq_feedback_key"),
    )
    op.create_index("ix_feedback_trusted_id", "feedback", ["trusted", "id"])
    op.create_index("ix_feedback_message_ref", "feedback", ["message_ref"])


def downgrade() -> None:
    op.drop_index("ix_feedback_message_ref", table_name="feedback")
    op.drop_index("ix_feedback_trusted_id", table_name="feedback")
    op.drop_table("feedback")
