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


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One routing decision the agent applied, for joining delivery outcomes to routes."""

    at: float
    node: str  # which agent decided (host name or configured node name)
    instance: str  # Postfix's per-transaction id; bound to the queue id at END-OF-MESSAGE
    tenant: str | None
    recipient: str
    action: str  # FILTER, HOLD, REJECT, DEFER_IF_PERMIT, 451 ...
    ip: str | None
    pool: str | None
    rule: str
    snapshot_version: int
    queue_id: str | None = None


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

    def change_marker(self) -> int:
        """A number that grows whenever standings change (a move or a pin is recorded);
        routing agents poll it to rebuild their snapshot."""
        ...

    def add_decisions(self, rows: Sequence[DecisionRow]) -> None:
        """Append routing decisions (batched by the agent, off the hot path)."""
        ...

    def bind_queue_ids(self, node: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Set the queue id of the decisions of each (instance, queue id) pair of a node."""
        ...

    def decisions(self, *, tenant: str | None = None, queue_id: str | None = None,
                  limit: int = 100) -> list[DecisionRow]:
        """Recorded decisions, newest first, optionally for one tenant or one queue id."""
        ...

    def close(self) -> None:
        ...
