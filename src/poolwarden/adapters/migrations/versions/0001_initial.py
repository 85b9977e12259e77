"""Initial schema: events, day counters, tenant standings and tier moves.

Hand-written operations that build exactly ``poolwarden.adapters.schema.metadata``
as of this revision (a test compares the migrated database with the metadata).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_COUNT_FIELDS = ("delivered", "deferred", "hard_bounces", "soft_bounces", "complaints",
                 "trap_hits")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("ip", sa.String(), nullable=True),
        sa.Column("sending_domain", sa.String(), nullable=True),
        sa.Column("recipient_domain", sa.String(), nullable=True),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("key", name="uq_events_key"),
    )
    op.create_index("ix_events_tenant_day", "events", ["tenant", "day"])

    op.create_table(
        "counters",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("scope_id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
          for name in _COUNT_FIELDS),
        sa.PrimaryKeyConstraint("scope", "scope_id", "provider", "day", name="pk_counters"),
    )
    op.create_index("ix_counters_day", "counters", ["day"])

    op.create_table(
        "tenant_state",
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("pinned_by", sa.String(), nullable=True),
        sa.Column("pinned_why", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant", name="pk_tenant_state"),
    )

    op.create_table(
        "tier_moves",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("before", sa.String(), nullable=False),
        sa.Column("after", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_tier_moves"),
    )
    op.create_index("ix_tier_moves_tenant_id", "tier_moves", ["tenant", "id"])


def downgrade() -> None:
    op.drop_index("ix_tier_moves_tenant_id", table_name="tier_moves")
    op.drop_table("tier_moves")
    op.drop_table("tenant_state")
    op.drop_index("ix_counters_day", table_name="counters")
    op.drop_table("counters")
    op.drop_index("ix_events_tenant_day", table_name="events")
    op.drop_table("events")
