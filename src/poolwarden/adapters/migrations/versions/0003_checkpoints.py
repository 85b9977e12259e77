"""Log checkpoints: where the follower of each log path stands (file identity + offset).

Hand-written operations that build exactly the ``checkpoints`` table of
``poolwarden.adapters.schema.metadata`` (a test compares the migrated
database with the metadata).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("resume_offset", sa.BigInteger(), nullable=False),
        sa.Column("resume_fingerprint", sa.String(255), nullable=True),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_checkpoints"),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
