"""The in-memory store: ``ports.Store`` in process memory, for tests and throwaway runs.

Same semantics as the SQL store, which shares the pure helpers defined here
(what a duplicate is, how events fold into day counters, what JSON is
stored): idempotent by event key, all-or-nothing writes, tier-move evidence
stored as JSON and handed back as fresh copies, routing decisions cleaned
the same way on every backend. Nothing survives ``close`` or the process; no
files, no network, no clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from poolwarden.adapters.reaction_store import ActivationLog
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
    TokenRow,
    UserRow,
)

MAX_REASON_LENGTH = 1024  # the width of events.reason in the SQL schema
MAX_RECIPIENT_LENGTH = 1024  # the width of decisions.recipient in the SQL schema
# Decision text is cut to these lengths (see ``clean_decision``). Free text that
# no index holds may be as long as a recipient; names and ids are kept short so
# that an indexed row stays far below PostgreSQL's B-tree entry limit (~2700
# bytes), which a long value of a few kilobytes would otherwise break.
MAX_DECISION_TEXT_LENGTH = 1024  # action, rule
MAX_DECISION_NAME_LENGTH = 255  # node, instance, tenant, ip, pool, queue id
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


def clean_text(value: str, limit: int) -> str:
    """``value`` as every backend can store it: NUL characters removed, characters
    UTF-8 cannot encode (lone surrogates) replaced by ``?``, then cut to ``limit``."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit]


def _clean_name(value: str | None) -> str | None:
    return None if value is None else clean_text(value, MAX_DECISION_NAME_LENGTH)


def clean_decision(row: DecisionRow) -> DecisionRow:
    """The decision as stored: text cleaned and cut instead of refused.

    Unlike events (refused whole when a field is unstorable), decisions are a
    best-effort audit trail fed with text from the network (recipient addresses,
    Postfix attributes): one hostile or oversized value must not cost the agent
    the whole batch, so NULs are dropped and overlong text is truncated
    (recipients to the column width), identically on every backend.
    """
    return DecisionRow(
        at=row.at,
        node=clean_text(row.node, MAX_DECISION_NAME_LENGTH),
        instance=clean_text(row.instance, MAX_DECISION_NAME_LENGTH),
        tenant=_clean_name(row.tenant),
        recipient=clean_text(row.recipient, MAX_RECIPIENT_LENGTH),
        action=clean_text(row.action, MAX_DECISION_TEXT_LENGTH),
        ip=_clean_name(row.ip),
        pool=_clean_name(row.pool),
        rule=clean_text(row.rule, MAX_DECISION_TEXT_LENGTH),
        snapshot_version=row.snapshot_version,
        queue_id=_clean_name(row.queue_id))


def clean_bindings(node: str, pairs: Sequence[tuple[str, str]]
                   ) -> tuple[str, list[tuple[str, str]]]:
    """``bind_queue_ids`` arguments cleaned like the stored decisions, so that an
    instance id matches the rows it was stored with."""
    return (clean_text(node, MAX_DECISION_NAME_LENGTH),
            [(clean_text(instance, MAX_DECISION_NAME_LENGTH),
              clean_text(queue_id, MAX_DECISION_NAME_LENGTH)) for instance, queue_id in pairs])


def clean_filter(value: str | None) -> str | None:
    """A ``decisions`` filter cleaned like the stored values it is compared with."""
    return _clean_name(value)


MAX_FEEDBACK_TEXT_LENGTH = 1024  # feedback reason, recipient, message id, source
MAX_FEEDBACK_NAME_LENGTH = 255  # key, tenant, ip, message ref, bounce reason/class, status


def clean_feedback(row: FeedbackRow) -> FeedbackRow:
    """The feedback row as stored: text cleaned and cut like decisions (see
    ``clean_decision``), because most of it is copied from mail anyone can send."""
    def text(value: str | None, limit: int) -> str | None:
        return None if value is None else clean_text(value, limit)

    return replace(
        row, key=clean_text(row.key, MAX_FEEDBACK_NAME_LENGTH),
        kind=clean_text(row.kind, MAX_FEEDBACK_NAME_LENGTH),
        reason=clean_text(row.reason, MAX_FEEDBACK_TEXT_LENGTH),
        tenant=text(row.tenant, MAX_FEEDBACK_NAME_LENGTH),
        ip=text(row.ip, MAX_FEEDBACK_NAME_LENGTH),
        recipient=text(row.recipient, MAX_FEEDBACK_TEXT_LENGTH),
        message_ref=text(row.message_ref, MAX_FEEDBACK_NAME_LENGTH),
        message_id=text(row.message_id, MAX_FEEDBACK_TEXT_LENGTH),
        bounce_reason=text(row.bounce_reason, MAX_FEEDBACK_NAME_LENGTH),
        bounce_class=text(row.bounce_class, MAX_FEEDBACK_NAME_LENGTH),
        dsn_status=text(row.dsn_status, MAX_FEEDBACK_NAME_LENGTH),
        feedback_type=text(row.feedback_type, MAX_FEEDBACK_NAME_LENGTH),
        source=clean_text(row.source, MAX_FEEDBACK_TEXT_LENGTH), id=None)


def count_feedback(rows: Iterable[FeedbackRow]) -> dict[str, int]:
    """``feedback_counts`` over rows: trusted, untrusted (not rejected) and rejected."""
    counts = {"trusted": 0, "untrusted": 0, "rejected": 0}
    for row in rows:
        counts["trusted" if row.trusted else "rejected" if row.rejected else "untrusted"] += 1
    return counts


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


MAX_AUDIT_NAME_LENGTH = 255  # audit actor and action (column widths)
MAX_AUDIT_TARGET_LENGTH = 1024


def clean_audit(row: AuditRow) -> AuditRow:
    """The audit row as stored: text cleaned and cut like decisions, before/after as
    JSON copies (``StoreError`` when they are not JSON objects)."""
    return AuditRow(at=row.at, actor=clean_text(row.actor, MAX_AUDIT_NAME_LENGTH),
                    source=clean_text(row.source, 32),
                    action=clean_text(row.action, MAX_AUDIT_NAME_LENGTH),
                    target=clean_text(row.target, MAX_AUDIT_TARGET_LENGTH),
                    before=None if row.before is None else json_copy(row.before, "audit before"),
                    after=None if row.after is None else json_copy(row.after, "audit after"),
                    id=row.id)


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


def clean_alert(row: AlertRow) -> AlertRow:
    """The alert as stored: text cleaned and cut to the column widths, numbers and outcome
    as JSON copies (``StoreError`` when they are not JSON objects)."""
    return AlertRow(at=row.at, key=clean_text(row.key, 255), kind=clean_text(row.kind, 64),
                    subject=clean_text(row.subject, 1024), text=clean_text(row.text, 65_536),
                    link=clean_text(row.link, 1024),
                    numbers=json_copy(row.numbers, "alert numbers"),
                    tenant=_clean_name(row.tenant), ip=_clean_name(row.ip),
                    outcome=json_copy(dict(row.outcome or {}), "alert outcome"), id=row.id)


class MemoryStore(AccessMemory):
    """``ports.Store`` held in dictionaries; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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
        self._alerts: list[AlertRow] = []  # oldest first, cleaned, with ids

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
        with self._lock:
            added = [ev for ev in unique_by_key(received) if ev.key not in self._keys]
            delta = fold(added)
            self._keys.update(ev.key for ev in added)
            for scope, scope_id, provider, day, counts in delta.buckets():
                self._ledger.add_counts(scope, scope_id, provider, day, counts)
            if checkpoint is not None:
                self._checkpoints[checkpoint.source] = checkpoint
        return AddResult(added=len(added), duplicates=len(received) - len(added),
                         added_events=tuple(added))

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

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""
