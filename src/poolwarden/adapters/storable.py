"""What every store keeps, decided once: the checks and clean-ups all backends share.

Pure helpers the SQL and in-memory adapters both call, so that they store (and refuse)
exactly the same values: which events are duplicates or unstorable, how decision,
feedback, audit and alert text is cleaned and cut to the column widths, what JSON is
stored. No storage of its own, no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.core.reputation import Ledger
from poolwarden.ports import AlertRow, AuditRow, CounterRow, DecisionRow, FeedbackRow

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


def clean_alert(row: AlertRow) -> AlertRow:
    """The alert as stored: text cleaned and cut to the column widths, numbers and outcome
    as JSON copies (``StoreError`` when they are not JSON objects)."""
    return AlertRow(at=row.at, key=clean_text(row.key, 255), kind=clean_text(row.kind, 64),
                    subject=clean_text(row.subject, 1024), text=clean_text(row.text, 65_536),
                    link=clean_text(row.link, 1024),
                    numbers=json_copy(row.numbers, "alert numbers"),
                    tenant=_clean_name(row.tenant), ip=_clean_name(row.ip),
                    outcome=json_copy(dict(row.outcome or {}), "alert outcome"), id=row.id)


def ledger_of(rows: Iterable[CounterRow]) -> Ledger:
    """A Ledger holding these stored counter rows."""
    ledger = Ledger()
    for row in rows:
        ledger.add_counts(row.scope, row.scope_id, row.provider, row.day, row.counts)
    return ledger
