"""The small interfaces between the core and the outside world.

Adapters implement these (``adapters/sqlstore.py`` for SQLite and PostgreSQL,
``adapters/memory.py`` for tests); services depend only on the Protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from poolwarden.core.blocklists import Listing, Outcome
from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding
from poolwarden.core.reaction import Activation
from poolwarden.core.reputation import Counts, Scope
from poolwarden.core.tiers import TierMove
from poolwarden.core.warmup import WarmupState


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


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One received feedback message (a bounce or complaint mail), per recipient it names.

    Stored whether or not it is believed: ``trusted`` rows were attributed through a
    valid VERP token (and, for complaints, came from a configured FBL source); the
    others say why not in ``reason``, which starts with ``rejected:`` when the
    message broke a size or structure cap. Only trusted rows ever produce events.
    """

    key: str  # idempotency key: the same message stored twice is one row
    received_at: float
    kind: str  # bounce | complaint | autoreply | delivered | other
    trusted: bool
    reason: str = ""
    tenant: str | None = None
    ip: str | None = None
    recipient: str | None = None  # as the message names it (untrusted text)
    message_ref: str | None = None  # from the VERP token
    message_id: str | None = None  # of the message the feedback is about, when given
    bounce_reason: str | None = None
    bounce_class: str | None = None
    dsn_status: str | None = None
    feedback_type: str | None = None
    source: str = ""  # lmtp, or the file it was read from
    raw_size: int = 0
    id: int | None = None  # set on rows read back from the store

    @property
    def rejected(self) -> bool:
        return self.reason.startswith("rejected:")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the follower of one log path stands, stored with the events read before it.

    ``fingerprint`` is ``"<n>:<sha256 hex>"`` over the first ``n`` bytes of the file, where
    ``n`` is min(1 KiB, ``offset``): the bytes already consumed, so a file shorter than
    1 KiB has a short fingerprint that grows with it (a candidate file matches when its
    first ``n`` bytes hash the same). Everything before ``offset`` is stored; re-reading
    from ``resume_offset`` (in the file named by ``resume_fingerprint``, the file read
    before this one, or this file when None) rebuilds the messages still open, with the
    log parser's ``year``/``month`` as they were there. Inode and device are kept as
    unsigned values; ``mtime`` is the file's when the checkpoint was written.
    """

    source: str  # the configured log path
    fingerprint: str
    inode: int
    device: int
    offset: int
    resume_offset: int
    updated_at: float
    mtime: float = 0.0
    resume_fingerprint: str | None = None
    year: int | None = None
    month: int = 0


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One API token as stored: never the token itself, only its SHA-256 and a short
    prefix (enough to tell tokens apart in a listing, far too little to guess one)."""

    id: int
    name: str
    prefix: str
    token_hash: str  # hex SHA-256 of the whole token
    role: str  # operator-read | operator-write | tenant
    tenant: str | None
    created_at: float
    created_by: str
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class UserRow:
    """One dashboard user: a scrypt hash of the password with its per-user salt."""

    name: str
    role: str
    tenant: str | None
    salt: str  # hex
    password_hash: str  # hex scrypt output
    created_at: float
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One append-only audit record: who did what to which target, from where, and the
    state before and after (JSON objects)."""

    at: float
    actor: str
    source: str  # api | cli | dashboard | engine
    action: str
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    id: int | None = None  # set on rows read back from the store


class AccessStore(Protocol):
    """API tokens, dashboard users and the audit log (migration 0008)."""

    def add_token(self, row: TokenRow) -> int:
        """Store a token (its ``id`` is ignored); the id it got."""
        ...

    def tokens(self) -> list[TokenRow]:
        ...

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        ...

    def touch_token(self, token_id: int, at: float) -> None:
        ...

    def revoke_token(self, token_id: int, at: float) -> bool:
        """Mark the token revoked; False when no such live token."""
        ...

    def add_user(self, row: UserRow) -> None:
        """Store a new user; ``StoreError`` when the name is taken."""
        ...

    def users(self) -> list[UserRow]:
        ...

    def user(self, name: str) -> UserRow | None:
        ...

    def remove_user(self, name: str) -> bool:
        ...

    def add_audit(self, row: AuditRow) -> int:
        """Append one audit row; its id. There is no update or delete."""
        ...

    def audit(self, *, actor: str | None = None, action: str | None = None,
              target: str | None = None, since: float | None = None,
              limit: int = 100) -> list[AuditRow]:
        """Audit rows, newest first, optionally filtered."""
        ...


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert raised for operators, with the numbers behind it and what became of it on
    each channel (``outcome``: channel -> sent | failed | suppressed | off)."""

    at: float
    key: str  # the condition it is about; one alert per condition until it clears
    kind: str  # tier_move, suspension, bad_neighbour, warmup_stall, reaction, ingest_lag, ...
    subject: str
    text: str  # the explanation, numbers and thresholds included
    link: str  # the dashboard page that explains it
    numbers: dict[str, Any]
    tenant: str | None = None
    ip: str | None = None
    outcome: dict[str, str] | None = None
    id: int | None = None  # set on rows read back from the store


class AlertStore(Protocol):
    """Alerts raised (migration 0009), for the dashboard and the API to list."""

    def add_alert(self, row: AlertRow) -> int:
        """Append one alert (its ``id`` is ignored); the id it got."""
        ...

    def alerts(self, *, since: float | None = None, kind: str | None = None,
               tenant: str | None = None, limit: int = 100) -> list[AlertRow]:
        """Recorded alerts, newest first, optionally filtered."""
        ...


class WarmupStore(Protocol):
    """Warm-up progress per (scope, id, provider) and the daily routed-recipient counts
    (``adapters.warmup_store``; beside the Store, in the same database)."""

    def warmup_states(self) -> list[WarmupState]:
        ...

    def save_warmup_states(self, states: Sequence[WarmupState], *, at: float) -> None:
        """Insert or replace the states, in one transaction."""
        ...

    def add_warmup_counts(self, day: int, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Add routed recipients of ``day`` per (scope, id, provider); counts of every node
        add up. Old days are pruned."""
        ...

    def warmup_counts(self, day: int) -> dict[tuple[str, str, str], int]:
        """Every node's routed recipients of ``day`` per (scope, id, provider)."""
        ...


@dataclass(frozen=True, slots=True)
class Lookup:
    """One DNS lookup's result: the outcome, the record values as text, their TTL."""

    outcome: Outcome
    values: tuple[str, ...] = ()
    ttl: float = 0.0
    seconds: float = 0.0  # how long the lookup took


class Resolver(Protocol):
    """DNS for the monitors (``adapters.resolver``): only the configured servers, hard
    timeouts, bounded concurrency; never raises for a DNS failure (the outcome says it)."""

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        ...


class ListingStore(Protocol):
    """Blocklist listings: the current state per (target, list) and their history
    (``adapters.listing_store``; beside the Store, in the same database)."""

    def listings(self) -> list[Listing]:
        """Every listing state kept (listed or not)."""
        ...

    def save_listings(self, states: Sequence[Listing], changes: Sequence[ListingChange]
                      ) -> None:
        """Insert or replace the states and append the changes, in one transaction."""
        ...

    def listing_history(self, *, target: str | None = None, limit: int = 100
                        ) -> list[ListingChange]:
        """Changes (listed, delisted), newest first."""
        ...


@dataclass(frozen=True, slots=True)
class ListingChange:
    """A target that was listed or delisted, with what the list said and the consequences."""

    at: float
    target: str
    list: str
    kind: str  # "ip" | "domain"
    change: str  # "listed" | "delisted"
    codes: tuple[str, ...]
    meaning: str
    reason: str
    consequence: str


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

    def add_feedback(self, rows: Sequence[FeedbackRow]) -> int:
        """Store feedback rows idempotently (by key) in one transaction; the number new.
        Text is cleaned and cut, not refused (see ``memory.clean_feedback``)."""
        ...

    def feedback(self, *, trusted: bool | None = None, message_ref: str | None = None,
                 limit: int = 100) -> list[FeedbackRow]:
        """Stored feedback rows, newest first, optionally only (un)trusted ones or those
        of one VERP message reference."""
        ...

    def feedback_counts(self) -> dict[str, int]:
        """How many feedback rows are ``trusted``, ``untrusted`` and ``rejected`` (the
        three are disjoint: rejected rows are not counted as untrusted)."""
        ...

    def checkpoint(self, source: str) -> Checkpoint | None:
        """The stored read position of a followed log path, or None before the first."""
        ...

    def add_events_at(self, events: Iterable[Event], checkpoint: Checkpoint | None
                      ) -> AddResult:
        """``add_events`` and the read position of the log they were read from, in ONE
        transaction: after a crash the stored position never runs ahead of (or behind)
        the stored events. ``None`` stores the events only."""
        ...

    def decisions_for_queue_ids(self, queue_ids: Sequence[str], *, since: float
                                ) -> list[DecisionRow]:
        """The decisions bound to any of ``queue_ids`` and made at or after ``since``
        (in no particular order): one query for a batch of log lines."""
        ...

    def add_reaction_activations(self, rows: Sequence[Activation], *, recorded_at: float
                                 ) -> list[Activation]:
        """Store reaction-rule activations idempotently (by ``Activation.key``) in one
        transaction; the newly stored ones with their ids. Moves ``change_marker``."""
        ...

    def reaction_activations(self, *, after_id: int | None = None, since: float | None = None,
                             active_at: float | None = None, ip: str | None = None,
                             tenant: str | None = None, limit: int = 100) -> list[Activation]:
        """Stored activations, newest first: with an id above ``after_id`` (a poller's
        cursor, e.g. the alerts loop), recorded at or after ``since``, still in force
        (main phase or ramp-back) at ``active_at``, of one IP or one tenant."""
        ...

    def close(self) -> None:
        ...
