"""The in-memory store: ``ports.Store`` in process memory, for tests and throwaway runs.

Same semantics as the SQL store (both call ``adapters.storable`` for what a
duplicate is, how text is cleaned and what JSON is stored, and
``core.counters`` for the deltas new events feed): idempotent by event key,
all-or-nothing writes, tier-move evidence
stored as JSON and handed back as fresh copies, routing decisions cleaned
the same way on every backend. Nothing survives ``close`` or the process; no
files, no network, no clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

from poolwarden.adapters.dmarc_store import MemoryDmarcStore
from poolwarden.adapters.event_rows import unique_rows
from poolwarden.adapters.listing_store import MemoryListingStore
from poolwarden.adapters.reaction_store import ActivationLog
from poolwarden.adapters.storable import (
    clean_alert,
    clean_audit,
    clean_bindings,
    clean_decision,
    clean_feedback,
    clean_filter,
    count_feedback,
    json_copy,
    json_dumps,
    ledger_of,
    unique_by_key,
)
from poolwarden.adapters.warmup_store import MemoryWarmupStore
from poolwarden.core.blocklists import Listing
from poolwarden.core.counters import CounterDelta, EventRow, counter_deltas, event_deltas
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding
from poolwarden.core.reaction import Activation
from poolwarden.core.reputation import Counts, Ledger
from poolwarden.core.tiers import TierMove
from poolwarden.ports import (
    AddResult,
    AlertRow,
    AuditRow,
    Checkpoint,
    CounterRow,
    DecisionRow,
    FeedbackRow,
    ListingChange,
    Store,
    StoredRows,
    TokenRow,
    UserRow,
)


class AccessMemory:
    """``ports.AccessStore`` in memory: tokens, users and an append-only audit list."""

    def _init_access(self) -> None:
        self._access_lock = threading.Lock()
        self._tokens: list[TokenRow] = []  # position + 1 is the id
        self._users: dict[str, UserRow] = {}
        self._audit: list[AuditRow] = []  # oldest first, with ids

    def add_token(self, row: TokenRow) -> int:
        with self._access_lock:
            if any(t.token_hash == row.token_hash for t in self._tokens):
                raise StoreError("store: a token with this hash exists")
            token_id = len(self._tokens) + 1
            self._tokens.append(replace(row, id=token_id))
            return token_id

    def tokens(self) -> list[TokenRow]:
        with self._access_lock:
            return list(self._tokens)

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        with self._access_lock:
            return next((t for t in self._tokens if t.token_hash == token_hash), None)

    def touch_token(self, token_id: int, at: float) -> None:
        with self._access_lock:
            if 0 < token_id <= len(self._tokens):
                self._tokens[token_id - 1] = replace(self._tokens[token_id - 1],
                                                     last_used_at=at)

    def revoke_token(self, token_id: int, at: float) -> bool:
        with self._access_lock:
            if not 0 < token_id <= len(self._tokens):
                return False
            token = self._tokens[token_id - 1]
            if token.revoked_at is not None:
                return False
            self._tokens[token_id - 1] = replace(token, revoked_at=at)
            return True

    def add_user(self, row: UserRow) -> None:
        with self._access_lock:
            if row.name in self._users:
                raise StoreError(f"store: user '{row.name}' exists")
            self._users[row.name] = row

    def users(self) -> list[UserRow]:
        with self._access_lock:
            return sorted(self._users.values(), key=lambda u: u.name)

    def user(self, name: str) -> UserRow | None:
        with self._access_lock:
            return self._users.get(name)

    def remove_user(self, name: str) -> bool:
        with self._access_lock:
            return self._users.pop(name, None) is not None

    def add_audit(self, row: AuditRow) -> int:
        clean = clean_audit(row)
        with self._access_lock:
            audit_id = len(self._audit) + 1
            self._audit.append(replace(clean, id=audit_id))
            return audit_id

    def audit(self, *, actor: str | None = None, action: str | None = None,
              target: str | None = None, since: float | None = None,
              limit: int = 100) -> list[AuditRow]:
        with self._access_lock:
            rows = [r for r in reversed(self._audit)
                    if (actor is None or r.actor == actor)
                    and (action is None or r.action == action)
                    and (target is None or r.target == target)
                    and (since is None or r.at >= since)]
        return [replace(r, before=None if r.before is None else json.loads(json.dumps(r.before)),
                        after=None if r.after is None else json.loads(json.dumps(r.after)))
                for r in rows[:max(limit, 0)]]


class MemoryStore(MemoryWarmupStore, MemoryDmarcStore, AccessMemory, Store):
    """``ports.Store`` held in dictionaries; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listing_store = MemoryListingStore()
        self._keys: set[str] = set()
        self._ledger = Ledger()
        self._standings: dict[str, TenantStanding] = {}
        self._moves: list[TierMove] = []  # oldest first, evidence kept as JSON copies
        self._decisions: list[DecisionRow] = []  # oldest first, cleaned
        # (node, instance) -> positions in _decisions of its rows without a queue id
        self._unbound: dict[tuple[str, str], list[int]] = {}
        self._checkpoints: dict[str, Checkpoint] = {}  # log source -> read position
        self._feedback: list[FeedbackRow] = []  # oldest first, cleaned, with ids
        self._feedback_keys: set[str] = set()
        self._reactions = ActivationLog()  # reaction-rule activations, with ids
        self._init_access()
        MemoryWarmupStore.__init__(self)
        MemoryDmarcStore.__init__(self)
        self._alerts: list[AlertRow] = []  # oldest first, cleaned, with ids

    def add_events(self, events: Iterable[Event]) -> AddResult:
        return self.add_events_at(events, None)

    def _add(self, new: list[Event]) -> tuple[CounterDelta, ...]:
        """Store the new events and their deltas (under the lock; nothing raises here)."""
        deltas = tuple(event_deltas(new))  # computed before anything is changed
        self._keys.update(ev.key for ev in new)
        self._ledger.apply(deltas)
        return deltas

    def counters(self, *, since_day: int) -> list[CounterRow]:
        with self._lock:
            return [CounterRow(scope=scope, scope_id=scope_id, provider=provider, day=day,
                               counts=Counts(*counts.as_tuple()))
                    for scope, scope_id, provider, day, counts in self._ledger.buckets()
                    if day >= since_day]

    def load_ledger(self, since_day: int) -> Ledger:
        """A Ledger holding every stored counter from ``since_day`` on."""
        return ledger_of(self.counters(since_day=since_day))

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

    def change_marker(self) -> int:
        """The number of recorded moves: moves are only ever appended, one or more
        by every ``record_moves`` or ``clear_pin`` that changes anything; plus the
        reaction activations recorded (an activation changes routing too)."""
        with self._lock:
            return len(self._moves) + self._reactions.count()

    def add_reaction_activations(self, rows: Sequence[Activation], *, recorded_at: float
                                 ) -> list[Activation]:
        return self._reactions.add(rows, recorded_at)

    def reaction_activations(self, *, after_id: int | None = None, since: float | None = None,
                             active_at: float | None = None, ip: str | None = None,
                             tenant: str | None = None, limit: int = 100) -> list[Activation]:
        return self._reactions.select(after_id=after_id, since=since, active_at=active_at,
                                      ip=ip, tenant=tenant, limit=limit)

    # -- routing decisions ---------------------------------------------------

    def add_decisions(self, rows: Sequence[DecisionRow]) -> None:
        cleaned = [clean_decision(row) for row in rows]
        with self._lock:
            for row in cleaned:
                if row.queue_id is None:
                    self._unbound.setdefault((row.node, row.instance), []).append(
                        len(self._decisions))
                self._decisions.append(row)

    def bind_queue_ids(self, node: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Bind only rows without a queue id: a reused instance id keeps its old binding."""
        node, cleaned = clean_bindings(node, pairs)
        with self._lock:
            for instance, queue_id in cleaned:
                for position in self._unbound.pop((node, instance), []):
                    self._decisions[position] = replace(self._decisions[position],
                                                        queue_id=queue_id)

    def decisions(self, *, tenant: str | None = None, queue_id: str | None = None,
                  limit: int = 100) -> list[DecisionRow]:
        tenant, queue_id = clean_filter(tenant), clean_filter(queue_id)
        chosen: list[DecisionRow] = []
        with self._lock:
            for row in reversed(self._decisions):
                if len(chosen) >= limit:
                    break
                if ((tenant is None or row.tenant == tenant)
                        and (queue_id is None or row.queue_id == queue_id)):
                    chosen.append(row)
        return chosen

    # -- feedback mail ------------------------------------------------------------

    def add_feedback(self, rows: Sequence[FeedbackRow]) -> int:
        cleaned = [clean_feedback(row) for row in rows]
        added = 0
        with self._lock:
            for row in cleaned:
                if row.key in self._feedback_keys:
                    continue
                self._feedback_keys.add(row.key)
                self._feedback.append(replace(row, id=len(self._feedback) + 1))
                added += 1
        return added

    def feedback(self, *, trusted: bool | None = None, message_ref: str | None = None,
                 limit: int = 100) -> list[FeedbackRow]:
        chosen: list[FeedbackRow] = []
        with self._lock:
            for row in reversed(self._feedback):
                if len(chosen) >= limit:
                    break
                if ((trusted is None or row.trusted is trusted)
                        and (message_ref is None or row.message_ref == message_ref)):
                    chosen.append(row)
        return chosen

    def feedback_counts(self) -> dict[str, int]:
        with self._lock:
            return count_feedback(self._feedback)

    # -- log checkpoints (ingestd) ---------------------------------------------

    def checkpoint(self, source: str) -> Checkpoint | None:
        with self._lock:
            return self._checkpoints.get(source)

    def add_events_at(self, events: Iterable[Event], checkpoint: Checkpoint | None
                      ) -> AddResult:
        """``add_events`` and the log's read position under one lock: all or nothing."""
        received = list(events)
        unique = unique_by_key(received)
        with self._lock:
            added = [ev for ev in unique if ev.key not in self._keys]
            deltas = self._add(added)
            if checkpoint is not None:
                self._checkpoints[checkpoint.source] = checkpoint
        return AddResult(added=len(added), duplicates=len(received) - len(added),
                         added_events=tuple(added), deltas=deltas)

    def add_event_rows_at(self, rows: Iterable[EventRow], checkpoint: Checkpoint | None
                          ) -> StoredRows:
        unique = unique_rows(rows)
        with self._lock:
            added = [row for row in unique if row[0] not in self._keys]
            deltas = counter_deltas(added)
            self._keys.update(row[0] for row in added)
            self._ledger.apply(deltas)
            if checkpoint is not None:
                self._checkpoints[checkpoint.source] = checkpoint
        return StoredRows(added=added, deltas=deltas)

    def decisions_for_queue_ids(self, queue_ids: Sequence[str], *, since: float
                                ) -> list[DecisionRow]:
        wanted = {clean_filter(q) for q in queue_ids}
        with self._lock:
            return [row for row in self._decisions
                    if row.queue_id is not None and row.queue_id in wanted and row.at >= since]

    # -- alerts (ports.AlertStore) ------------------------------------------------

    def add_alert(self, row: AlertRow) -> int:
        clean = clean_alert(row)
        with self._lock:
            alert_id = len(self._alerts) + 1
            self._alerts.append(replace(clean, id=alert_id))
            return alert_id

    def alerts(self, *, since: float | None = None, kind: str | None = None,
               tenant: str | None = None, limit: int = 100) -> list[AlertRow]:
        with self._lock:
            rows = [r for r in reversed(self._alerts)
                    if (since is None or r.at >= since) and (kind is None or r.kind == kind)
                    and (tenant is None or r.tenant == tenant)][:max(limit, 0)]
        return [clean_alert(r) for r in rows]  # fresh copies of the JSON fields

    # -- blocklist listings (``ports.ListingStore``), kept beside the rest ----------------

    def listings(self) -> list[Listing]:
        return self._listing_store.listings()

    def save_listings(self, states: Sequence[Listing], changes: Sequence[ListingChange]
                      ) -> None:
        self._listing_store.save_listings(states, changes)

    def listing_history(self, *, target: str | None = None, limit: int = 100
                        ) -> list[ListingChange]:
        return self._listing_store.listing_history(target=target, limit=limit)


    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""
