"""Migration 0010 (lean events) keeps every stored row: a database at 0009 with events and
counters, upgraded, holds the same rows (counters keyed by day first and rebuilt WITHOUT
ROWID on SQLite, the tenant/day and day indexes gone), keeps counting, and downgrades back
to 0009 intact."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

from poolwarden.adapters.sqlstore import MIGRATIONS_DIR, SqlStore
from poolwarden.ports import Checkpoint
from tests.adapters.test_store import (
    SQL_BACKENDS,
    buckets_of_ledger,
    ledger_of,
    random_events,
    stored_buckets,
)

OLD_KEY = ("scope", "scope_id", "provider", "day")
NEW_KEY = ("day", "scope", "scope_id", "provider")


def _migrate(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def _rows(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(
                    f"SELECT * FROM {table} ORDER BY {order}"))]
                for table, order in (("events", "id"),
                                     ("counters", "scope, scope_id, provider, day"))}


def _shape(engine: Engine) -> tuple[Any, ...]:
    """The revision, the names of the plain indexes of events and of counters, the
    columns of the counters key."""
    with engine.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        inspector = inspect(conn)
        return (revision, *({name for ix in inspector.get_indexes(table)
                             if (name := ix["name"] or "").startswith("ix_")}
                            for table in ("events", "counters")),
                tuple(inspector.get_pk_constraint("counters")["constrained_columns"]))


def _without_rowid(engine: Engine) -> bool:
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'counters'")).scalar_one()
    return "WITHOUT ROWID" in sql.upper()


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_upgrading_from_0009_keeps_events_and_counters(db_url: str) -> None:
    engine = create_engine(db_url)
    store = SqlStore(engine)  # its SQLite connection settings, without migrating
    sqlite = engine.dialect.name == "sqlite"
    try:
        _migrate(engine, "upgrade", "0009")
        assert _shape(engine) == ("0009", {"ix_events_tenant_day"}, {"ix_counters_day"},
                                  OLD_KEY)
        old = random_events(2_500, seed=41, prefix="old")
        store.add_events(old)
        before = _rows(engine)
        assert len(before["events"]) == 2_500 and before["counters"]

        store.migrate()
        assert _shape(engine) == ("0012", set(), set(), NEW_KEY)
        assert _rows(engine) == before
        if sqlite:
            assert _without_rowid(engine)
        # still counting, on both write paths
        new = random_events(1_500, seed=42, prefix="new")
        store.add_events(new[:500])
        cp = Checkpoint(source="/var/log/mail.log", fingerprint="fp", inode=1, device=2,
                        offset=3, resume_offset=3, resume_fingerprint=None, mtime=4.0,
                        year=2026, month=11, updated_at=5.0)
        store.add_events_at(new[500:], cp)
        assert stored_buckets(store) == buckets_of_ledger(ledger_of([*old, *new]))
        after = _rows(engine)

        _migrate(engine, "downgrade", "0009")
        assert _shape(engine) == ("0009", {"ix_events_tenant_day"}, {"ix_counters_day"},
                                  OLD_KEY)
        assert _rows(engine) == after
        if sqlite:
            assert not _without_rowid(engine)
        store.migrate()
        assert _rows(engine) == after
    finally:
        store.close()
