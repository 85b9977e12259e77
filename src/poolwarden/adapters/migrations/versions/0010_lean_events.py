"""Lean events: drop the unused events index; on SQLite, counters become WITHOUT ROWID.

Both cut the log ingest's write cost. Nothing reads ``events`` by tenant and day (only by
key and by id range), yet ``ix_events_tenant_day`` was updated on every insert. On SQLite
a rowid table keeps its rows in one b-tree and the primary key in another; WITHOUT ROWID
keeps the rows in the primary-key b-tree, so an upserted bucket touches one b-tree, not
two. SQLite cannot alter that in place: ``counters`` is rebuilt (create, copy every row,
drop, rename) inside the migration's transaction. PostgreSQL has no such table option
and only loses the index.

Hand-written operations that build exactly ``poolwarden.adapters.schema.metadata`` as of
this revision (a test compares the migrated database with the metadata).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_COUNT_FIELDS = ("delivered", "deferred", "hard_bounces", "soft_bounces", "complaints",
                 "trap_hits")
_COUNTER_COLUMNS = ("scope", "scope_id", "provider", "day", *_COUNT_FIELDS)


def _rebuild_counters(*, with_rowid: bool) -> None:
    """Re-create ``counters`` (SQLite only) with or without a rowid, keeping every row."""
    op.create_table(
        "counters_rebuilt",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("scope_id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
          for name in _COUNT_FIELDS),
        sa.PrimaryKeyConstraint("scope", "scope_id", "provider", "day", name="pk_counters"),
        sqlite_with_rowid=with_rowid,
    )
    columns = ", ".join(_COUNTER_COLUMNS)
    # in key order: the new b-tree is filled by appends
    op.execute(f"INSERT INTO counters_rebuilt ({columns}) SELECT {columns} FROM counters "
               "ORDER BY scope, scope_id, provider, day")
    op.drop_index("ix_counters_day", table_name="counters")
    op.drop_table("counters")
    op.rename_table("counters_rebuilt", "counters")
    op.create_index("ix_counters_day", "counters", ["day"])


def upgrade() -> None:
    op.drop_index("ix_events_tenant_day", table_name="events")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_counters(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_counters(with_rowid=True)
    op.create_index("ix_events_tenant_day", "events", ["tenant", "day"])
