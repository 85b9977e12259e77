"""Spam-trap hits: the operator's own traps (configuration) and vendor trap feeds (files).

``traps_of(config)`` gives the ``core.traps.Traps`` of the ``[traps]`` section, for
``core.traps.trap_hit_for(recipient, traps)``: the log ingester calls it for every
delivery or attempt, and a hit is a TRAP_HIT event for the tenant and egress IP that
sent the message.

``import_trap_feed(engine, path)`` reads a vendor feed, CSV or JSON lines, one hit
per line: time (epoch seconds or RFC 3339), trap address, sending IP, sender domain,
message id. CSV may start with a header row naming the columns (``time, trap, ip,
sender_domain, message_id`` and common aliases); without one the columns are in
that order. Every line is validated before anything is stored, so a malformed line
stops the import with its line number and field and stores nothing (like ``events
import``). The tenant comes from the sender domain (a configured tenant domain or a
subdomain of one), else from the IP when it is one tenant's dedicated IP; a hit no
tenant can be found for is reported with its line and not stored. The trap address
itself is not stored in the event (trap addresses are kept from tenants).
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import InputError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.tiers import TierMove
from poolwarden.core.traps import Traps, normalise_address
from poolwarden.services.reputation.engine import Engine

__all__ = ["TrapFeed", "TrapImportResult", "import_trap_feed", "read_trap_feed", "traps_of"]

MAX_LINE_BYTES = 64 * 1024
FIELDS = ("time", "trap", "ip", "sender_domain", "message_id")
ALIASES: dict[str, str] = {
    **{name: name for name in FIELDS},
    "timestamp": "time", "date": "time", "seen": "time", "seen_at": "time",
    "trap_address": "trap", "trap_addr": "trap", "address": "trap", "recipient": "trap",
    "rcpt": "trap", "sending_ip": "ip", "source_ip": "ip", "src_ip": "ip", "client_ip": "ip",
    "domain": "sender_domain", "from_domain": "sender_domain",
    "mail_from_domain": "sender_domain", "sending_domain": "sender_domain",
    "message-id": "message_id", "messageid": "message_id", "msgid": "message_id",
}


def traps_of(config: LoadedConfig) -> Traps:
    """The operator's traps from the ``[traps]`` section."""
    section = config.settings.traps
    return Traps.of(section.addresses, section.domains)


@dataclass(frozen=True, slots=True)
class TrapFeed:
    lines: int
    events: list[Event]
    unattributed: list[tuple[int, str]]  # (line, why): hits no tenant could be found for


@dataclass(frozen=True, slots=True)
class TrapImportResult:
    lines: int
    added: int
    duplicates: int
    unattributed: tuple[tuple[int, str], ...]
    moves: tuple[TierMove, ...]


def _name(key: Any) -> str:
    return str(key).strip().lower().replace(" ", "_")


class _Resolver:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.by_domain = {d.lower(): t.name for t in engine.tenants.values() for d in t.domains}
        self.by_ip: dict[str, str | None] = {}
        for tenant in engine.tenants.values():
            for ip in tenant.dedicated_ips:
                # an address two tenants claim as dedicated names neither
                self.by_ip[ip] = tenant.name if ip not in self.by_ip else None

    def by_sender_domain(self, domain: str) -> str | None:
        while domain:
            found = self.by_domain.get(domain)
            if found is not None:
                return found
            _, _, domain = domain.partition(".")
        return None


def _number_or_date(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _time(value: Any, where: dict[str, Any]) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise InputError("missing or invalid 'time'", field="time", **where)
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        number = _number_or_date(text)
        if number is None:
            raise InputError(f"'time' {text[:40]!r} is neither epoch seconds nor RFC 3339 "
                             "with a time zone", field="time", **where)
    if number is None or not 0 <= number < 10_000_000_000:
        raise InputError("'time' must be epoch seconds or RFC 3339 within range", field="time",
                         **where)
    return number


def _text(record: Mapping[str, Any], name: str, where: dict[str, Any], *, required: bool,
          limit: int) -> str | None:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(f"missing required field '{name}'", field=name, **where)
        return None
    if not isinstance(value, str):
        raise InputError(f"'{name}' must be a string, got {type(value).__name__}", field=name,
                         **where)
    value = value.strip()
    if len(value) > limit or "\x00" in value:
        raise InputError(f"'{name}' is longer than {limit} characters or contains NUL",
                         field=name, **where)
    return value


def _event(record: Mapping[str, Any], resolver: _Resolver, where: dict[str, Any],
           ) -> tuple[Event | None, str]:
    when = _time(record.get("time"), where)
    trap = _text(record, "trap", where, required=True, limit=320) or ""
    trap = normalise_address(trap)
    local, at, trap_domain = trap.rpartition("@")
    if not at or not local or not trap_domain or "@" in local:
        raise InputError(f"trap address {trap[:80]!r} is not local@domain", field="trap",
                         **where)
    ip_text = _text(record, "ip", where, required=True, limit=64) or ""
    try:
        ip = str(ipaddress.ip_address(ip_text))
    except ValueError:
        raise InputError(f"'ip' {ip_text[:64]!r} is not an IP address", field="ip",
                         **where) from None
    domain = _text(record, "sender_domain", where, required=False, limit=253)
    domain = domain.lower().rstrip(".") if domain else None
    if domain is not None and ("@" in domain or " " in domain or not domain):
        raise InputError(f"'sender_domain' {domain[:80]!r} is not a domain",
                         field="sender_domain", **where)
    message_id = _text(record, "message_id", where, required=False, limit=998)
    tenant = resolver.by_sender_domain(domain) if domain else None
    if tenant is None:
        tenant = resolver.by_ip.get(ip)
    if tenant is None:
        return None, (f"no tenant sends from domain {domain or '(none)'} and {ip} is no "
                      "tenant's dedicated IP")
    own_domain = domain if domain and resolver.by_sender_domain(domain) == tenant else None
    key = "trap:" + hashlib.sha256("\x1f".join(
        (repr(when), trap, ip, domain or "", message_id or "")).encode()).hexdigest()[:32]
    return Event(key=key, time=when, kind=EventKind.TRAP_HIT, tenant=tenant,
                 provider=resolver.engine.providers.for_domain(trap_domain), ip=ip,
                 sending_domain=own_domain, recipient_domain=trap_domain,
                 reason="spam trap hit (vendor feed)"), ""


def _csv_header(fields: list[str]) -> list[str] | None:
    names = [_name(f) for f in fields]
    if any(n in ALIASES for n in names) and "time" in {ALIASES.get(n) for n in names}:
        return [ALIASES.get(n, n) for n in names]
    return None


def read_trap_feed(engine: Engine, path: Path) -> TrapFeed:
    """Validate every line of a trap feed and build its events; ``InputError`` (with the
    line number) on the first malformed line."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=source) from exc
    resolver = _Resolver(engine)
    events: list[Event] = []
    unattributed: list[tuple[int, str]] = []
    fmt: str | None = None
    columns: list[str] | None = None
    lines = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        lines = number
        where: dict[str, Any] = {"source": source, "line": number}
        if len(raw) > MAX_LINE_BYTES:
            raise InputError(f"line longer than {MAX_LINE_BYTES} bytes", **where)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError("not UTF-8", **where) from None
        if not text or (fmt != "json" and text.startswith("#")):
            continue
        if fmt is None:
            fmt = "json" if text.startswith("{") else "csv"
            if fmt == "csv":
                columns = _csv_header(next(csv.reader([text])))
                if columns is not None:
                    continue
        record: Mapping[str, Any]
        if fmt == "json":
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", **where) from None
            if not isinstance(loaded, dict):
                raise InputError("a JSON line must be an object", **where)
            record = {ALIASES.get(_name(k), _name(k)): v for k, v in loaded.items()}
        else:
            try:
                values = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                raise InputError(f"not valid CSV ({exc})", **where) from None
            names = columns or list(FIELDS)
            if len(values) > len(names):
                raise InputError(f"{len(values)} columns, expected at most {len(names)}",
                                 **where)
            record = dict(zip(names, values, strict=False))
        event, why = _event(record, resolver, where)
        if event is None:
            unattributed.append((number, why))
        else:
            events.append(event)
    return TrapFeed(lines=lines, events=events, unattributed=unattributed)


def import_trap_feed(engine: Engine, path: Path, *, now: float,
                     evaluate: bool = True) -> TrapImportResult:
    """Validate the whole feed, then store its hits in one idempotent transaction."""
    feed = read_trap_feed(engine, path)
    result = engine.add_events(feed.events)
    moves = engine.evaluate(now) if evaluate else []
    return TrapImportResult(lines=feed.lines, added=result.added,
                            duplicates=result.duplicates, unattributed=tuple(feed.unattributed),
                            moves=tuple(moves))
