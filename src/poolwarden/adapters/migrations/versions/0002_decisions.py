"""Routing decisions: what each agent decided, bound to the Postfix queue id later.

Hand-written operations that build exactly the ``decisions`` table of
``poolwarden.adapters.schema.metadata`` (a test compares the migrated
database with the metadata).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("instance", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=True),
        sa.Column("recipient", sa.String(1024), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("ip", sa.String(), nullable=True),
        sa.Column("pool", sa.String(), nullable=True),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("snapshot_version", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_node_instance", "decisions", ["node", "instance"])
    op.create_index("ix_decisions_queue_id", "decisions", ["queue_id"])
    op.create_index("ix_decisions_tenant_id", "decisions", ["tenant", "id"])


def downgrade() -> None:
    op.drop_index("ix_decisions_tenant_id", table_name="decisions")
    op.drop_index("ix_decisions_queue_id", table_name="decisions")
    op.drop_index("ix_decisions_node_instance", table_name="decisions")
    op.drop_table("decisions")
