"""The in-memory store: ``ports.Store`` in process memory, for tests and throwaway runs.

Same semantics as the SQL store, which shares the pure helpers defined here
(what a duplicate is, how events fold into day counters, what JSON is
stored): idempotent by event key, all-or-nothing writes, tier-move evidence
stored as JSON and handed back as fresh copies. Nothing survives ``close``
or the process; no files, no network, no clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding
from poolwarden.core.reputation import Counts, Ledger
from poolwarden.core.tiers import TierMove
from poolwarden.ports import AddResult, CounterRow

MAX_REASON_LENGTH = 1024  # the width of events.reason in the SQL schema
_TEXT_FIELDS = ("key", "tenant", "provider", "ip", "sending_domain", "recipient_domain",
                "reason")


def unique_by_key(batch: Iterable[Event]) -> list[Event]:
    """The batch without repeated keys, first occurrence kept, order kept.

    Raises ``StoreError`` for an event no backend could store, so that every
    backend refuses the same events (SQLite would store what PostgreSQL refuses).
    """
    seen: set[str] = set()
    unique: list[Event] = []
    for ev in batch:
        _check_storable(ev)
        if ev.key not in seen:
            seen.add(ev.key)
            unique.append(ev)
    return unique


def _check_storable(ev: Event) -> None:
    if len(ev.reason) > MAX_REASON_LENGTH:
        raise StoreError(f"store: event {ev.key[:80]!r}: reason is longer than "
                         f"{MAX_REASON_LENGTH} characters")
    for name in _TEXT_FIELDS:
        value = getattr(ev, name)
        if value is not None and "\x00" in value:
            raise StoreError(f"store: event {ev.key[:80]!r}: {name} contains a NUL character")


def fold(new_events: Iterable[Event]) -> Ledger:
    """The day-counter deltas of these events: a fresh Ledger, so the buckets are
    exactly those ``Ledger.add`` fills (every scope, the provider and ``*``)."""
    delta = Ledger()
    for ev in new_events:
        delta.add(ev)
    return delta


def json_dumps(value: Any) -> str:
    """The JSON stored for tier-move metrics and thresholds, on every backend.

    NaN and Infinity are refused (``ValueError``): PostgreSQL would refuse them
    and SQLite would keep them, so every store refuses them the same way.
    """
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def json_copy(value: dict[str, Any], what: str) -> dict[str, Any]:
    """A fresh copy of ``value`` as JSON stores it; ``StoreError`` when it is not JSON."""
    try:
        copied: dict[str, Any] = json.loads(json_dumps(value))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"store: {what} is not storable as JSON: {exc}") from exc
    return copied


class MemoryStore:
    """``ports.Store`` held in dictionaries; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._ledger = Ledger()
        self._standings: dict[str, TenantStanding] = {}
        self._moves: list[TierMove] = []  # oldest first, evidence kept as JSON copies

    def add_events(self, events: Iterable[Event]) -> AddResult:
        received = list(events)
        with self._lock:
            added = [ev for ev in unique_by_key(received) if ev.key not in self._keys]
            delta = fold(added)  # everything is computed before anything is changed
            self._keys.update(ev.key for ev in added)
            for scope, scope_id, provider, day, counts in delta.buckets():
                self._ledger.add_counts(scope, scope_id, provider, day, counts)
        return AddResult(added=len(added), duplicates=len(received) - len(added),
                         added_events=tuple(added))

    def counters(self, *, since_day: int) -> list[CounterRow]:
        with self._lock:
            return [CounterRow(scope=scope, scope_id=scope_id, provider=provider, day=day,
                               counts=Counts(*counts.as_tuple()))
                    for scope, scope_id, provider, day, counts in self._ledger.buckets()
                    if day >= since_day]

    def load_ledger(self, since_day: int) -> Ledger:
        """A Ledger holding every stored counter from ``since_day`` on."""
        ledger = Ledger()
        for row in self.counters(since_day=since_day):
            ledger.add_counts(row.scope, row.scope_id, row.provider, row.day, row.counts)
        return ledger

    def event_count(self) -> int:
        with self._lock:
            return len(self._keys)

    def standings(self) -> dict[str, TenantStanding]:
        with self._lock:
            return dict(self._standings)

    def record_moves(self, moves: Sequence[TierMove]) -> None:
        stored = [replace(m, metrics=json_copy(m.metrics, f"metrics of the move of {m.tenant}"),
                          thresholds=json_copy(m.thresholds,
                                                f"thresholds of the move of {m.tenant}"))
                  for m in moves]
        with self._lock:
            self._moves.extend(stored)
            for m in stored:
                self._standings[m.tenant] = TenantStanding(
                    tier=m.after, since=m.at, pinned=m.pinned,
                    pinned_by=m.actor if m.pinned else None,
                    pinned_why=m.reason if m.pinned else None)

    def clear_pin(self, tenant: str, *, actor: str, why: str, at: float, source: str) -> None:
        """Unpin ``tenant``; a no-op (nothing recorded) when it has no pin."""
        with self._lock:
            standing = self._standings.get(tenant)
            if standing is None or not standing.pinned:
                return
            self._standings[tenant] = replace(standing, pinned=False, pinned_by=None,
                                              pinned_why=None)
            self._moves.append(TierMove(tenant=tenant, before=standing.tier,
                                        after=standing.tier, at=at, rule="override_cleared",
                                        reason=why, actor=actor, source=source))

    def moves(self, tenant: str | None = None, *, limit: int = 100) -> list[TierMove]:
        with self._lock:
            chosen = [m for m in reversed(self._moves) if tenant is None or m.tenant == tenant]
        return [replace(m, metrics=json.loads(json_dumps(m.metrics)),
                        thresholds=json.loads(json_dumps(m.thresholds)))
                for m in chosen[:max(limit, 0)]]

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""
