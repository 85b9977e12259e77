"""Storage of reaction-rule activations, for the SQL store and the in-memory store.

``ActivationLog`` is the in-memory list (``MemoryStore`` delegates to it);
``insert_activations`` / ``select_activations`` are the SQL statements
(``SqlStore`` delegates to them inside its own transactions). Both keep the same
semantics: idempotent by ``Activation.key`` (an ingester re-reading a log, or two
ingesters, store an activation once), ids that only grow (the store's change
marker includes the largest, so routing agents rebuild their snapshot), text cut
to the column widths. No clock: ``recorded_at`` is passed in.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, select

from poolwarden.adapters.schema import reaction_activations as table
from poolwarden.core.reaction import Activation, ReactionAction, RuleScope

MAX_NAME = 255
MAX_KEY = 1024
MAX_WHY = 4000
MAX_LINE = 1000


def _cut(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value if len(value) <= limit else value[:limit - 1] + "…"


def clean_activation(a: Activation, recorded_at: float) -> Activation:
    """The activation as every backend stores it."""
    return replace(a, rule=_cut(a.rule, MAX_NAME) or "", provider=_cut(a.provider, MAX_NAME)
                   or "", ip=_cut(a.ip, MAX_NAME), tenant=_cut(a.tenant, MAX_NAME),
                   pool=_cut(a.pool, MAX_NAME), why=_cut(a.why, MAX_WHY) or "",
                   lines=tuple(_cut(line, MAX_LINE) or "" for line in a.lines[-50:]),
                   steps=tuple((float(f), float(u)) for f, u in a.steps),
                   recorded_at=recorded_at)


def _wanted(a: Activation, *, after_id: int | None, since: float | None,
            active_at: float | None, ip: str | None, tenant: str | None) -> bool:
    return ((after_id is None or (a.id or 0) > after_id)
            and (since is None or (a.recorded_at or 0.0) >= since)
            and (active_at is None or a.ends_at > active_at)
            and (ip is None or a.ip == ip)
            and (tenant is None or a.tenant == tenant))


class ActivationLog:
    """Activations in process memory, oldest first, with ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[Activation] = []
        self._keys: set[str] = set()

    def add(self, rows: Sequence[Activation], recorded_at: float) -> list[Activation]:
        added: list[Activation] = []
        with self._lock:
            for row in rows:
                cleaned = clean_activation(row, recorded_at)
                key = cleaned.key[:MAX_KEY]
                if key in self._keys:
                    continue
                self._keys.add(key)
                stored = replace(cleaned, id=len(self._rows) + 1)
                self._rows.append(stored)
                added.append(stored)
        return added

    def count(self) -> int:
        return len(self._rows)

    def select(self, *, after_id: int | None = None, since: float | None = None,
               active_at: float | None = None, ip: str | None = None,
               tenant: str | None = None, limit: int = 100) -> list[Activation]:
        with self._lock:
            found = [a for a in reversed(self._rows)
                     if _wanted(a, after_id=after_id, since=since, active_at=active_at,
                                ip=ip, tenant=tenant)]
        return found[:max(limit, 0)]


# -- SQL ----------------------------------------------------------------------------------


def _row(a: Activation) -> dict[str, Any]:
    return {"key": a.key[:MAX_KEY], "rule": a.rule, "action": a.action.value,
            "scope": a.scope.value, "provider": a.provider, "ip": a.ip, "tenant": a.tenant,
            "started_at": a.started_at, "until": a.until, "ends_at": a.ends_at,
            "steps": [list(step) for step in a.steps], "cap_factor": a.cap_factor,
            "pool": a.pool, "matches": a.matches, "threshold": a.threshold,
            "period": a.period, "why": a.why, "lines": list(a.lines),
            "recorded_at": a.recorded_at}


def _activation(row: Any) -> Activation:
    return Activation(
        rule=row["rule"], action=ReactionAction(row["action"]), scope=RuleScope(row["scope"]),
        provider=row["provider"], ip=row["ip"], tenant=row["tenant"],
        started_at=row["started_at"], until=row["until"],
        steps=tuple((float(f), float(u)) for f, u in row["steps"] or ()),
        cap_factor=row["cap_factor"], pool=row["pool"], matches=row["matches"],
        threshold=row["threshold"], period=row["period"], why=row["why"],
        lines=tuple(row["lines"] or ()), id=row["id"], recorded_at=row["recorded_at"])


def insert_activations(conn: Connection, insert: Any, rows: Sequence[Activation],
                       recorded_at: float) -> list[Activation]:
    """Insert what is new (by key), in key order; the stored ones, with their ids."""
    unique: dict[str, Activation] = {}
    for row in rows:
        cleaned = clean_activation(row, recorded_at)
        unique.setdefault(cleaned.key[:MAX_KEY], cleaned)
    if not unique:
        return []
    stmt = (insert(table).on_conflict_do_nothing(index_elements=[table.c.key])
            .returning(table.c.id, table.c.key))
    added: list[Activation] = []
    for key in sorted(unique):  # one lock order for every writer
        for row_id, _ in conn.execute(stmt, [_row(unique[key])]).all():
            added.append(replace(unique[key], id=int(row_id)))
    return added


def select_activations(conn: Connection, *, after_id: int | None = None,
                       since: float | None = None, active_at: float | None = None,
                       ip: str | None = None, tenant: str | None = None,
                       limit: int = 100) -> list[Activation]:
    query = select(table).order_by(table.c.id.desc()).limit(max(limit, 0))
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    if since is not None:
        query = query.where(table.c.recorded_at >= since)
    if active_at is not None:
        query = query.where(table.c.ends_at > active_at)
    if ip is not None:
        query = query.where(table.c.ip == ip)
    if tenant is not None:
        query = query.where(table.c.tenant == tenant)
    return [_activation(row) for row in conn.execute(query).mappings().all()]


def newest_activation_id() -> Any:
    """A scalar subquery: the largest activation id (0 before any)."""
    return select(func.coalesce(func.max(table.c.id), 0)).scalar_subquery()

