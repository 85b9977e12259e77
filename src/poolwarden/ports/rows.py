"""The values that cross the store ports: rows as stored and read back, batch results.

Frozen dataclasses only; the Protocols that move them are in ``ports.stores``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poolwarden.core.blocklists import Outcome
from poolwarden.core.counters import CounterDelta, EventRow
from poolwarden.core.events import Event
from poolwarden.core.reputation import Counts, Scope


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_events`` did: new events stored and duplicates skipped (by event key),
    and the counter deltas stored for the new events (``core.counters``)."""

    added: int
    duplicates: int
    added_events: tuple[Event, ...] = ()
    deltas: tuple[CounterDelta, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredRows:
    """What ``add_event_rows_at`` did: the rows newly stored (the first of repeated keys,
    in the order given) and the counter deltas stored for them."""

    added: list[EventRow]
    deltas: list[CounterDelta]


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


@dataclass(frozen=True, slots=True)
class Lookup:
    """One DNS lookup's result: the outcome, the record values as text, their TTL."""

    outcome: Outcome
    values: tuple[str, ...] = ()
    ttl: float = 0.0
    seconds: float = 0.0  # how long the lookup took


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


@dataclass(frozen=True, slots=True)
class DmarcReportRow:
    """One DMARC input as stored: a report (``stored``), or one refused (``rejected``) or
    recognised but not an aggregate report (``skipped``: failure and TLS reports), with its
    reason. ``key`` is the report's identity (reporter and report id) for stored reports,
    the hash of the input for the others: each is stored once."""

    key: str
    status: str  # stored | rejected | skipped
    received_at: float
    source: str
    reason: str = ""
    org_name: str = ""
    report_id: str = ""
    policy_domain: str = ""
    policy_p: str = ""
    begin: int = 0
    end: int = 0
    records: int = 0
    messages: int = 0
    warnings: tuple[str, ...] = ()
    id: int | None = None
