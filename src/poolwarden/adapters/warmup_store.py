"""Warm-up state in the store: stages per provider and the daily routed-recipient counts.

``SqlWarmupStore`` works on a SQLAlchemy engine (SQLite or PostgreSQL, tables
``warmup_state`` and ``warmup_counts`` from migration 0006); ``MemoryWarmupStore``
keeps the same in process memory. ``SqlStore`` and ``MemoryStore`` are built on them,
so every ``ports.Store`` is a ``ports.WarmupStore``.
Counts are added (never overwritten) so several routing nodes sum up; every
write is one transaction and driver errors leave as ``StoreError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from poolwarden.adapters.schema import warmup_counts, warmup_state
from poolwarden.core.errors import StoreError
from poolwarden.core.warmup import WarmupState
from poolwarden.ports import WarmupStore

CountKey = tuple[str, str, str]  # (scope, scope id, provider)
KEEP_COUNT_DAYS = 8  # counts older than this are pruned: only today's are ever read
STATE_COLUMNS = ("scope", "scope_id", "provider", "schedule", "stage", "started_day",
                 "stage_day", "judged_day", "last_active_day", "why")


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise StoreError(f"store: {action} failed: {type(orig).__name__}: "
                         f"{str(orig).strip().splitlines()[0] if str(orig) else ''}") from exc


def _state_of(row: Any) -> WarmupState:
    return WarmupState(**{name: row[name] for name in STATE_COLUMNS})


class SqlWarmupStore(WarmupStore):
    """``ports.WarmupStore`` over a SQLAlchemy engine already migrated by ``open_store``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _upsert_into(self, table: Any) -> Any:
        return (postgresql.insert if self._engine.dialect.name == "postgresql"
                else sqlite.insert)(table)

    @contextmanager
    def _tx(self, action: str) -> Iterator[Connection]:
        with _translated(action), self._engine.connect() as conn, conn.begin():
            yield conn

    def warmup_states(self) -> list[WarmupState]:
        with self._tx("read warm-up state") as conn:
            rows = conn.execute(select(warmup_state)).mappings().all()
        return [_state_of(row) for row in rows]

    def save_warmup_states(self, states: Sequence[WarmupState], *, at: float) -> None:
        if not states:
            return
        ins = self._upsert_into(warmup_state)
        stmt = ins.on_conflict_do_update(
            index_elements=[warmup_state.c.scope, warmup_state.c.scope_id,
                            warmup_state.c.provider],
            set_={name: ins.excluded[name] for name in (*STATE_COLUMNS[3:], "updated_at")})
        rows = sorted(({**{name: getattr(s, name) for name in STATE_COLUMNS},
                        "why": s.why[:4000], "updated_at": at} for s in states),
                      key=lambda r: (r["scope"], r["scope_id"], r["provider"]))
        with self._tx("save warm-up state") as conn:
            conn.execute(stmt, rows)

    def add_warmup_counts(self, day: int, counts: Mapping[CountKey, int]) -> None:
        rows = [{"scope": k[0], "scope_id": k[1][:255], "provider": k[2], "day": day,
                 "count": n} for k, n in sorted(counts.items()) if n]
        ins = self._upsert_into(warmup_counts)
        stmt = ins.on_conflict_do_update(
            index_elements=[warmup_counts.c.scope, warmup_counts.c.scope_id,
                            warmup_counts.c.provider, warmup_counts.c.day],
            set_={"count": warmup_counts.c.count + ins.excluded["count"]})
        with self._tx("add warm-up counts") as conn:
            if rows:
                conn.execute(stmt, rows)
            conn.execute(delete(warmup_counts).where(
                warmup_counts.c.day < day - KEEP_COUNT_DAYS))

    def warmup_counts(self, day: int) -> dict[CountKey, int]:
        query = select(warmup_counts).where(warmup_counts.c.day == day)
        with self._tx("read warm-up counts") as conn:
            rows = conn.execute(query).mappings().all()
        return {(r["scope"], r["scope_id"], r["provider"]): int(r["count"]) for r in rows}


class MemoryWarmupStore(WarmupStore):
    """The same in process memory (tests, ``MemoryStore``)."""

    def __init__(self) -> None:
        self._warmup_lock = threading.Lock()
        self._states: dict[CountKey, WarmupState] = {}
        self._counts: dict[tuple[int, CountKey], int] = {}

    def warmup_states(self) -> list[WarmupState]:
        with self._warmup_lock:
            return list(self._states.values())

    def save_warmup_states(self, states: Sequence[WarmupState], *, at: float) -> None:
        with self._warmup_lock:
            for s in states:
                self._states[(s.scope, s.scope_id, s.provider)] = s

    def add_warmup_counts(self, day: int, counts: Mapping[CountKey, int]) -> None:
        with self._warmup_lock:
            for key, n in counts.items():
                if n:
                    self._counts[(day, key)] = self._counts.get((day, key), 0) + n
            for old in [k for k in self._counts if k[0] < day - KEEP_COUNT_DAYS]:
                del self._counts[old]

    def warmup_counts(self, day: int) -> dict[CountKey, int]:
        with self._warmup_lock:
            return {key: n for (d, key), n in self._counts.items() if d == day}
