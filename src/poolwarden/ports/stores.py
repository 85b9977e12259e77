"""The small interfaces between the services and the stores, one per job's need.

Each service names the Protocol it needs (the ingest an ``IngestStore``, the alerter an
``AlertSource``, the audit log an ``AccessStore`` ...); the runtime hands it the store.
``Store`` is the whole system of record: every store adapter (``adapters.sqlstore`` on
SQLite and PostgreSQL, ``adapters.memory`` for tests) subclasses it, so mypy checks that
each implements every part. No capability is optional: a service never probes a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from poolwarden.core.auth import Finding
from poolwarden.core.blocklists import Listing
from poolwarden.core.counters import EventRow
from poolwarden.core.dmarc import JoinedRecord
from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding
from poolwarden.core.reaction import Activation
from poolwarden.core.tiers import TierMove
from poolwarden.core.warmup import WarmupState
from poolwarden.ports.rows import (
    AddResult,
    AlertRow,
    AuditRow,
    Checkpoint,
    CounterRow,
    DecisionRow,
    DmarcReportRow,
    FeedbackRow,
    ListingChange,
    Lookup,
    StoredRows,
    TokenRow,
    UserRow,
)


class EventStore(Protocol):
    """Outcome events, stored once by key, and the day counters they feed.

    Only events whose key is new feed counters, with the deltas ``core.counters`` makes of
    them; the store adds those deltas and reports them (``AddResult.deltas``) so that a
    long-lived reputation engine can add the same to its ledger."""

    def add_events(self, events: Iterable[Event]) -> AddResult:
        """Store events idempotently (by key) and update the day counters, all in one
        transaction: either every new event and its counters are stored, or nothing."""
        ...

    def counters(self, *, since_day: int) -> Iterable[CounterRow]:
        """Every stored day counter from ``since_day`` on."""
        ...

    def event_count(self) -> int:
        ...


class IngestStore(EventStore, Protocol):
    """What the log ingest reads and writes: read positions, event batches stored with
    them, and the decision log rows that attribute deliveries."""

    def checkpoint(self, source: str) -> Checkpoint | None:
        """The stored read position of a followed log path, or None before the first."""
        ...

    def add_events_at(self, events: Iterable[Event], checkpoint: Checkpoint | None
                      ) -> AddResult:
        """``add_events`` and the read position of the log they were read from, in ONE
        transaction: after a crash the stored position never runs ahead of (or behind)
        the stored events. ``None`` stores the events only."""
        ...

    def add_event_rows_at(self, rows: Iterable[EventRow], checkpoint: Checkpoint | None
                          ) -> StoredRows:
        """``add_events_at`` for events as row tuples (``core.counters.EventRow``: the log
        ingest's bulk path, no ``Event`` per row); the rows newly stored and their deltas."""
        ...

    def decisions_for_queue_ids(self, queue_ids: Sequence[str], *, since: float
                                ) -> list[DecisionRow]:
        """The decisions bound to any of ``queue_ids`` and made at or after ``since``
        (in no particular order): one query for a batch of log lines."""
        ...


class StandingStore(Protocol):
    """Tenant standings (tiers, pins) and the tier moves that made them."""

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

    def change_marker(self) -> int:
        """A number that grows whenever standings change (a move or a pin is recorded);
        routing agents poll it to rebuild their snapshot."""
        ...


class DecisionStore(Protocol):
    """The routing agents' decision log, bound to Postfix queue ids."""

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


class FeedbackStore(Protocol):
    """Feedback mail received (bounces, complaints ...), trusted or not."""

    def add_feedback(self, rows: Sequence[FeedbackRow]) -> int:
        """Store feedback rows idempotently (by key) in one transaction; the number new.
        Text is cleaned and cut, not refused (see ``adapters.storable.clean_feedback``)."""
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


class ReactionStore(Protocol):
    """Reaction-rule activations (stored once by key)."""

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
    (the same database as the other stores; ``adapters.warmup_store``)."""

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


class AsyncResolver(Protocol):
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


class DmarcStore(Protocol):
    """DMARC aggregate reports, each stored once, with their records joined to our tenants,
    egress IPs and routes."""

    def add_dmarc_report(self, report: DmarcReportRow, records: Sequence[JoinedRecord]
                         ) -> bool:
        """Store a report and its records in one transaction; False (nothing written)
        when a report with the same key is already stored."""
        ...

    def dmarc_reports(self, *, status: str | None = None, limit: int = 100
                      ) -> list[DmarcReportRow]:
        """The newest reports first."""
        ...

    def dmarc_records(self, *, tenant: str | None = None, domain: str | None = None,
                      since: int | None = None) -> list[JoinedRecord]:
        """Stored records, optionally of one tenant, one From domain, ending at or after
        ``since`` (epoch seconds)."""
        ...


class AuthStore(Protocol):
    """The latest authentication findings of each tenant's domains (``poolwarden domains
    check``): what the dashboard shows, the alerter watches and routing keeps mail from."""

    def save_auth_findings(self, findings: Sequence[Finding], *, at: float,
                           tenants: Sequence[str | None]) -> None:
        """Replace the stored findings of ``tenants`` (None: the pools' return paths)."""
        ...

    def auth_findings(self, *, tenant: str | None = None) -> list[tuple[Finding, float]]:
        """Stored findings with the time they were checked."""
        ...


class AlertSource(StandingStore, ReactionStore, AlertStore, ListingStore, AuthStore,
                  Protocol):
    """What the alerter reads (moves, activations, blocklist listings, domain findings) and
    records alerts in."""


class Store(IngestStore, StandingStore, DecisionStore, FeedbackStore,
            ReactionStore, AccessStore, AlertStore, WarmupStore, ListingStore, DmarcStore,
            AuthStore, Protocol):
    """The system of record, all of the above in one database; every store adapter
    subclasses it."""

    def close(self) -> None:
        ...
