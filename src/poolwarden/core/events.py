"""Outcome events: what happened to a message, the input of the reputation engine.

Pure values plus the one place that defines an event's idempotency key and
how it is read from a plain mapping (JSON lines import, the store).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from poolwarden.core.errors import InputError


class EventKind(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    TRAP_HIT = "trap_hit"


@dataclass(frozen=True, slots=True)
class Event:
    """One outcome, attributed to a tenant, an egress IP and a sending domain."""

    key: str
    time: float  # epoch seconds, from the event itself (never the ingest clock)
    kind: EventKind
    tenant: str
    provider: str
    ip: str | None = None
    sending_domain: str | None = None
    recipient_domain: str | None = None
    reason: str = ""

    @property
    def day(self) -> int:
        """UTC day number (days since the epoch): the reputation bucket."""
        return int(self.time // 86400)


def derive_key(fields: Mapping[str, Any]) -> str:
    """A stable key for an event that arrived without one: the hash of its content."""
    text = "\x1f".join(f"{name}={fields.get(name, '')}" for name in (
        "time", "kind", "tenant", "ip", "sending_domain", "recipient", "recipient_domain",
        "provider", "reason", "message_id"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _text(record: Mapping[str, Any], name: str, *, required: bool,
          where: dict[str, Any]) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise InputError(f"missing required field '{name}'", field=name, **where)
        return None
    if not isinstance(value, str):
        raise InputError(f"'{name}' must be a string, got {type(value).__name__}", field=name,
                         **where)
    if len(value) > 1024:
        raise InputError(f"'{name}' is longer than 1024 characters", field=name, **where)
    return value


def event_from_record(record: Mapping[str, Any], *, provider: str, source: str | None = None,
                      line: int | None = None) -> Event:
    """Validate one JSON-lines record and build its Event.

    ``provider`` is resolved by the caller from the recipient domain (the core
    keeps provider grouping in one place, ``core.providers``).
    """
    where: dict[str, Any] = {"source": source, "line": line}
    kind_text = _text(record, "kind", required=True, where=where) or ""
    try:
        kind = EventKind(kind_text)
    except ValueError:
        allowed = ", ".join(k.value for k in EventKind)
        raise InputError(f"unknown kind '{kind_text}' (expected one of: {allowed})",
                         field="kind", **where) from None
    time_value = record.get("time")
    if isinstance(time_value, bool) or not isinstance(time_value, int | float):
        raise InputError("'time' must be epoch seconds (a number)", field="time", **where)
    if not 0 <= time_value < 10_000_000_000:
        raise InputError(f"'time' {time_value} is out of range", field="time", **where)
    tenant = _text(record, "tenant", required=True, where=where)
    assert tenant is not None
    key = _text(record, "key", required=False, where=where) or derive_key(record)
    return Event(
        key=key,
        time=float(time_value),
        kind=kind,
        tenant=tenant,
        provider=provider,
        ip=_text(record, "ip", required=False, where=where),
        sending_domain=_lower(_text(record, "sending_domain", required=False, where=where)),
        recipient_domain=_lower(recipient_domain_of(record, where)),
        reason=_text(record, "reason", required=False, where=where) or "",
    )


def recipient_domain_of(record: Mapping[str, Any], where: dict[str, Any]) -> str | None:
    domain = _text(record, "recipient_domain", required=False, where=where)
    if domain:
        return domain
    recipient = _text(record, "recipient", required=False, where=where)
    if recipient is None:
        return None
    if "@" not in recipient:
        raise InputError(f"recipient '{recipient}' has no domain", field="recipient", **where)
    return recipient.rsplit("@", 1)[1]


def _lower(value: str | None) -> str | None:
    return value.lower().rstrip(".") if value else value
