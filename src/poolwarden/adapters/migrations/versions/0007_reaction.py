"""Reaction-rule activations: which rule fired on which provider × IP or tenant, until when.

Hand-written operations that build exactly the ``reaction_activations`` table of
``poolwarden.adapters.schema.metadata`` (a test compares the migrated database
with the metadata).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "reaction_activations",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("ip", sa.String(255), nullable=True),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("cap_factor", sa.Float(), nullable=True),
        sa.Column("pool", sa.String(255), nullable=True),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("period", sa.Float(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reaction_activations"),
        sa.UniqueConstraint("key", name="uq_reaction_activations_key"),
    )
    op.create_index("ix_reaction_activations_ends_at", "reaction_activations", ["ends_at"])
    op.create_index("ix_reaction_activations_ip", "reaction_activations", ["ip"])
    op.create_index("ix_reaction_activations_tenant", "reaction_activations", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_reaction_activations_tenant", table_name="reaction_activations")
    op.drop_index("ix_reaction_activations_ip", table_name="reaction_activations")
    op.drop_index("ix_reaction_activations_ends_at", table_name="reaction_activations")
    op.drop_table("reaction_activations")
