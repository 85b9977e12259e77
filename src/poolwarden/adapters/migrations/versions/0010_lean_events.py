"""Lean events: fewer b-trees to update per stored event and per counted bucket.

Nothing reads ``events`` by tenant and day (only by key and by id range), yet
``ix_events_tenant_day`` was updated on every insert: dropped. ``counters`` gets its
primary key in the order (day, scope, scope_id, provider), which serves the only filter
(``day >= ?``) by itself, so ``ix_counters_day`` goes too. On SQLite ``counters`` also
becomes WITHOUT ROWID: the rows live in the primary-key b-tree, so an upserted bucket
touches one b-tree instead of three (rowid table, key index, day index). SQLite cannot
alter either in place: the table is rebuilt (create, copy every row, drop, rename) inside
the migration's transaction. PostgreSQL, which has no WITHOUT ROWID, re-creates the key.

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


_OLD_KEY = ("scope", "scope_id", "provider", "day")
_NEW_KEY = ("day", "scope", "scope_id", "provider")


def _rebuild_counters(key: tuple[str, ...], *, with_rowid: bool) -> None:
    """Re-create ``counters`` (SQLite only) with this primary key, with or without a
    rowid, keeping every row."""
    op.create_table(
        "counters_rebuilt",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("scope_id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
          for name in _COUNT_FIELDS),
        sa.PrimaryKeyConstraint(*key, name="pk_counters"),
        sqlite_with_rowid=with_rowid,
    )
    columns = ", ".join(_COUNTER_COLUMNS)
    # in key order: the new b-tree is filled by appends
    op.execute(f"INSERT INTO counters_rebuilt ({columns}) SELECT {columns} FROM counters "
               f"ORDER BY {', '.join(key)}")
    op.drop_table("counters")  # its indexes with it
    op.rename_table("counters_rebuilt", "counters")


def upgrade() -> None:
    op.drop_index("ix_events_tenant_day", table_name="events")
    op.drop_index("ix_counters_day", table_name="counters")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_counters(_NEW_KEY, with_rowid=False)
    else:
        op.drop_constraint("pk_counters", "counters", type_="primary")
        op.create_primary_key("pk_counters", "counters", list(_NEW_KEY))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_counters(_OLD_KEY, with_rowid=True)
    else:
        op.drop_constraint("pk_counters", "counters", type_="primary")
        op.create_primary_key("pk_counters", "counters", list(_OLD_KEY))
    op.create_index("ix_counters_day", "counters", ["day"])
    op.create_index("ix_events_tenant_day", "events", ["tenant", "day"])
