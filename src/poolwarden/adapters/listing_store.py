"""Blocklist listings in the store: each (target, list)'s standing and the change history.

``SqlListingStore`` works on the engine of a ``SqlStore`` (SQLite or PostgreSQL, tables
``blocklist_state`` and ``blocklist_changes`` from migration 0011); ``MemoryListingStore``
keeps the same in process memory for tests. ``store`` gives the one that
belongs to a ``ports.Store``. Every write is one transaction (states and the changes they
made together, so a crash never leaves a listing without its history); driver errors leave
as ``StoreError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, desc, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from poolwarden.adapters.schema import blocklist_changes, blocklist_state
from poolwarden.core.blocklists import Listing, ListKind
from poolwarden.core.errors import StoreError
from poolwarden.ports import ListingChange

STATE_COLUMNS = ("target", "list", "kind", "listed", "since", "last_listed", "clear_since",
                 "codes", "meaning", "reason", "checked_at")


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise StoreError(f"store: {action} failed: {type(orig).__name__}: "
                         f"{str(orig).strip().splitlines()[0] if str(orig) else ''}") from exc


def _row_of(s: Listing) -> dict[str, Any]:
    return {"target": s.target[:255], "list": s.list[:255], "kind": s.kind.value,
            "listed": s.listed, "since": s.since, "last_listed": s.last_listed,
            "clear_since": s.clear_since, "codes": list(s.codes), "meaning": s.meaning[:4000],
            "reason": s.reason[:4000], "checked_at": s.checked_at}


def _listing_of(row: Any) -> Listing:
    return Listing(row["target"], row["list"], ListKind(row["kind"]), bool(row["listed"]),
                   row["since"], row["last_listed"], row["clear_since"], tuple(row["codes"]),
                   row["meaning"], row["reason"], row["checked_at"])


def _change_of(row: Any) -> ListingChange:
    return ListingChange(row["at"], row["target"], row["list"], row["kind"], row["change"],
                         tuple(row["codes"]), row["meaning"], row["reason"],
                         row["consequence"])


class SqlListingStore:
    """``ports.ListingStore`` over a SQLAlchemy engine already migrated by ``open_store``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert: Any = (postgresql.insert if engine.dialect.name == "postgresql"
                             else sqlite.insert)

    @contextmanager
    def _tx(self, action: str) -> Iterator[Connection]:
        with _translated(action), self._engine.connect() as conn, conn.begin():
            yield conn

    def listings(self) -> list[Listing]:
        with self._tx("read blocklist listings") as conn:
            rows = conn.execute(select(blocklist_state)).mappings().all()
        return [_listing_of(r) for r in rows]

    def save_listings(self, states: Sequence[Listing], changes: Sequence[ListingChange]
                      ) -> None:
        if not states and not changes:
            return
        ins = self._insert(blocklist_state)
        stmt = ins.on_conflict_do_update(
            index_elements=[blocklist_state.c.target, blocklist_state.c.list],
            set_={name: ins.excluded[name] for name in STATE_COLUMNS[2:]})
        rows = sorted((_row_of(s) for s in states), key=lambda r: (r["target"], r["list"]))
        with self._tx("save blocklist listings") as conn:
            if rows:
                conn.execute(stmt, rows)
            if changes:
                conn.execute(blocklist_changes.insert(), [
                    {"at": c.at, "target": c.target[:255], "list": c.list[:255],
                     "kind": c.kind, "change": c.change, "codes": list(c.codes),
                     "meaning": c.meaning[:4000], "reason": c.reason[:4000],
                     "consequence": c.consequence[:4000]} for c in changes])

    def listing_history(self, *, target: str | None = None, limit: int = 100
                        ) -> list[ListingChange]:
        query = select(blocklist_changes).order_by(desc(blocklist_changes.c.id)).limit(limit)
        if target is not None:
            query = query.where(blocklist_changes.c.target == target)
        with self._tx("read blocklist history") as conn:
            rows = conn.execute(query).mappings().all()
        return [_change_of(r) for r in rows]


class MemoryListingStore:
    """The same in process memory (tests, ``MemoryStore``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], Listing] = {}
        self._changes: list[ListingChange] = []

    def listings(self) -> list[Listing]:
        with self._lock:
            return list(self._states.values())

    def save_listings(self, states: Sequence[Listing], changes: Sequence[ListingChange]
                      ) -> None:
        with self._lock:
            for s in states:
                self._states[(s.target, s.list)] = s
            self._changes.extend(changes)

    def listing_history(self, *, target: str | None = None, limit: int = 100
                        ) -> list[ListingChange]:
        with self._lock:
            found = [c for c in reversed(self._changes) if target is None or c.target == target]
        return found[:limit]
