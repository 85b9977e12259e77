"""The small interfaces between the core and the outside world.

Adapters implement these (``adapters/sqlstore.py`` for SQLite and PostgreSQL,
``adapters/memory.py`` for tests); services depend only on the Protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding
from poolwarden.core.reputation import Counts, Scope
from poolwarden.core.tiers import TierMove


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_events`` did: new events stored and duplicates skipped (by event key)."""

    added: int
    duplicates: int
    added_events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class CounterRow:
    scope: Scope
    scope_id: str
    provider: str
    day: int
    counts: Counts


class Store(Protocol):
    """The system of record: events, day counters, tenant standings and tier moves."""

    def add_events(self, events: Iterable[Event]) -> AddResult:
        """Store events idempotently (by key) and update the day counters, all in one
        transaction: either every new event and its counters are stored, or nothing."""
        ...

    def counters(self, *, since_day: int) -> Iterable[CounterRow]:
        """Every stored day counter from ``since_day`` on."""
        ...

    def standings(self) -> dict[str, TenantStanding]:
        """The stored tier of every tenant that has one."""
        ...

    def record_moves(self, moves: Sequence[TierMove]) -> None:
        """Append the moves and update the standings, in one transaction."""
        ...

    def clear_pin(self, tenant: str, *, actor: str, why: str, at: float, source: str) -> None:
        """Remove an operator pin (recorded as a move from the tier to itself)."""
        ...

    def moves(self, tenant: str | None = None, *, limit: int = 100) -> list[TierMove]:
        """Recorded moves, newest first."""
        ...

    def event_count(self) -> int:
        ...

    def close(self) -> None:
        ...
