"""DNS blocklists: each (target, list)'s standing and the history of listings.

Hand-written operations that build exactly the ``blocklist_state`` and
``blocklist_changes`` tables of ``poolwarden.adapters.schema.metadata`` (a test compares
the migrated database with the metadata).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "blocklist_state",
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("list", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("last_listed", sa.Float(), nullable=True),
        sa.Column("clear_since", sa.Float(), nullable=True),
        sa.Column("codes", sa.JSON(), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("target", "list", name="pk_blocklist_state"),
    )
    op.create_table(
        "blocklist_changes",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("list", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("codes", sa.JSON(), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("consequence", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blocklist_changes"),
    )
    op.create_index("ix_blocklist_changes_at", "blocklist_changes", ["at"])
    op.create_index("ix_blocklist_changes_target", "blocklist_changes", ["target", "id"])


def downgrade() -> None:
    op.drop_index("ix_blocklist_changes_target", table_name="blocklist_changes")
    op.drop_index("ix_blocklist_changes_at", table_name="blocklist_changes")
    op.drop_table("blocklist_changes")
    op.drop_table("blocklist_state")
