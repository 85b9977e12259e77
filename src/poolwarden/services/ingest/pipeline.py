"""Postfix log lines -> deliveries -> attributed events: the work ``ingestd`` and the
one-off import share (``services.ingest.ingestd`` for the loop, checkpoints and the mapping
rules in its docstring).

``Pipeline`` feeds complete lines to ``LogParser`` and a ``Correlator``, marking each
chunk with its read position so the correlator can tell where the oldest open message
began (the checkpoint's resume point); ``DeliveryMapper`` turns deliveries into
``Event``s (tenant, egress IP, provider, kind, reason) with the routing snapshot, the
decision log rows of the batch (``lookup_decisions``: one query) and the bounce
classifier; ``IngestMetrics`` counts. Touches no file and no clock; the store only
through ``lookup_decisions``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter

from poolwarden.adapters.event_rows import EventRow, event_of
from poolwarden.adapters.tailer import Gap
from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import OTHER_PROVIDER
from poolwarden.core.policy import RouteRequest, resolve_tenant
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, Checkpoint, DecisionRow, IngestStore
from poolwarden.wire.bounce_classify import classify
from poolwarden.wire.postfix_correlate import Correlator, Delivery
from poolwarden.wire.postfix_log import LogParser

log = logging.getLogger("poolwarden.ingestd")

MAX_QUEUE_AGE = 6 * 86400.0  # Postfix's maximal_queue_lifetime (5 d) plus a day
DECISION_SKEW = 300.0  # a decision may be stamped this much after the delivery line
MAX_UNKNOWN_LOGGED = 100  # distinct unknown senders logged one by one
_CACHE_LIMIT = 50_000
# kinds as their text (the row's value): Enum attribute access costs per delivery
_HARD, _SOFT = EventKind.HARD_BOUNCE.value, EventKind.SOFT_BOUNCE.value
_KIND_OF_STATUS = {"sent": EventKind.DELIVERED.value, "deferred": EventKind.DEFERRED.value,
                   "expired": EventKind.SOFT_BOUNCE.value}
_DIGITS = frozenset("0123456789")
_TIME, _QUEUE_ID = itemgetter(0), itemgetter(2)  # Delivery.time, Delivery.queue_id
Hook = Callable[[str], None]
# ``on_batch(deliveries, events)``: after a batch is committed, the events it newly stored
# and, at the same index, the delivery each was made from (``deliveries[i].key ==
# events[i].key``): the raw reply, DSN and egress IP next to tenant and provider.
BatchCallback = Callable[[Sequence[Delivery], Sequence[Event]], None]


@dataclass(slots=True)
class IngestMetrics:
    """Counters of one ingester (all sources); ``lag_bytes`` is a level, not a count."""

    lines_read: int = 0  # complete lines consumed (re-read lines not counted)
    lines_replayed: int = 0  # lines re-read after a restart to rebuild open messages
    bytes_read: int = 0
    deliveries: int = 0  # delivery outcomes the correlator produced
    events_stored: int = 0
    duplicates: int = 0  # events whose key was stored already
    unknown_tenants: int = 0  # deliveries of no known tenant (not stored)
    skipped: int = 0  # Postfix's own notifications, probes, lines without a time
    gaps: int = 0  # unreadable byte ranges reported
    gap_bytes: int = 0  # bytes known to be lost (a lower bound)
    gap_lines: int = 0  # lines known to be lost
    context_lost: int = 0  # restarts that could not re-read where open messages began
    rotations: int = 0
    truncations: int = 0
    commits: int = 0
    errors: int = 0
    callback_errors: int = 0  # ``on_batch`` calls that raised (logged; ingestion goes on)
    lag_bytes: int = 0
    gap_records: deque[Gap] = field(default_factory=lambda: deque(maxlen=1000))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "gap_records"}


# -- parsing and correlating ------------------------------------------------------


_gc_lock = threading.Lock()
_gc_holders = 0  # ingest loops running with the cyclic GC paused
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is parsed and stored.

    A catch-up allocates millions of short-lived tuples while ~10^5 open messages stay
    alive; each collection of the older generations walks all of those, which cost a
    fifth of the ingest's time. The ingest makes no reference cycles (NamedTuples, dicts,
    plain objects), so nothing is leaked: reference counting frees it all, and the
    collector comes back (if it was on) when the last ingest loop leaves."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


def parser_at(year: int | None, month: int, reference: float | None) -> LogParser:
    """A parser in the state a checkpoint recorded (``year``/``month`` of the log time at the
    resume point); with no year, dates are placed by ``reference`` (the file's mtime)."""
    if year is None:
        return LogParser(reference=reference)
    parser = LogParser(year=year)
    parser._month = month  # LogParser keeps the Dec -> Jan rollover state here
    return parser


def parser_state(parser: LogParser) -> tuple[int | None, int]:
    return parser._year, parser._month


class Pipeline:
    """Lines -> deliveries for one stream (a followed path, or one import)."""

    def __init__(self, parser: LogParser) -> None:
        self.parser = parser
        self.correlator = Correlator()
        self.deliveries: list[Delivery] = []

    def set_parser(self, parser: LogParser) -> None:
        self.parser = parser

    def feed(self, serial: int, start: int, data: bytes, *, emit: bool) -> int:
        """Feed complete lines (``data`` ends with a newline) read at byte ``start`` of the
        file numbered ``serial``; returns how many lines."""
        corr = self.correlator
        # chunk granularity keeps the per-line cost at zero: a restart re-reads at most one
        # chunk more than needed
        corr.mark = (serial, start, *parser_state(self.parser))
        return corr.feed_chunk(self.parser, data, self.deliveries if emit else [])

    def take(self) -> list[Delivery]:
        out, self.deliveries = self.deliveries, []
        return out


# -- mapping deliveries to events ---------------------------------------------------


def _clean(value: str | None, limit: int = 255) -> str | None:
    if not value:
        return None
    value = value.replace("\x00", "").strip().lower().rstrip(".")
    return value[:limit] or None


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return _clean(address.rpartition("@")[2])


def _same_node(node: str, host: str | None) -> bool:
    if host is None:
        return False
    node, host = node.lower(), host.lower()
    return node == host or node.partition(".")[0] == host.partition(".")[0]


def pick_decision(rows: Sequence[DecisionRow], d: Delivery) -> DecisionRow | None:
    """The decision that routed this delivery's message, if one can be told apart."""
    if not rows or d.time is None:
        return None
    first = d.message.first_seen if d.message.first_seen is not None else d.time
    fits = [r for r in rows if first - MAX_QUEUE_AGE <= r.at <= d.time + DECISION_SKEW]
    if not fits:
        return None
    mine = [r for r in fits if _same_node(r.node, d.host)]
    if mine:
        fits = mine
    elif len({r.node for r in fits}) > 1:
        return None  # a short queue id on several other nodes: ambiguous
    recipient = (d.recipient or "").lower()
    exact = [r for r in fits if r.recipient.lower() == recipient]
    return max(exact or fits, key=lambda r: r.at)


class DeliveryMapper:
    """Delivery -> Event (see the module docstring), with small caches for the hot path."""

    def __init__(self, snapshot: Snapshot, metrics: IngestMetrics) -> None:
        self.snapshot = snapshot
        self.providers = snapshot.providers
        self.metrics = metrics
        self._tenants: dict[tuple[str | None, str | None, str | None], str | None] = {}
        self._provider: dict[tuple[str | None, str], str] = {}
        self._reasons: dict[tuple[str | None, str, str], tuple[str, bool]] = {}
        self._unknown: set[tuple[str | None, str | None]] = set()
        self._cleaned: dict[str, str | None] = {}  # domains, IPs: few distinct values
        self._relay_hosts: dict[str, str] = {}
        self._senders: dict[str, str | None] = {}  # sender address -> its cleaned domain

    def use(self, snapshot: Snapshot) -> None:
        """Map with a newer routing snapshot (tenants added or changed by a reload): the
        caches that depend on tenants and providers start afresh."""
        if snapshot is self.snapshot:
            return
        self.snapshot = snapshot
        self.providers = snapshot.providers
        self._tenants.clear()
        self._provider.clear()
        self._unknown.clear()

    def events(self, deliveries: Iterable[Delivery],
               decisions: dict[str, list[DecisionRow]],
               sources: list[Delivery] | None = None) -> list[Event]:
        """The events of ``deliveries`` (those to store). With ``sources``, the delivery
        each event came from is appended to it: ``sources[i]`` made ``events[i]``."""
        return [event_of(row) for row in self.rows(deliveries, decisions, sources)]

    def rows(self, deliveries: Iterable[Delivery], decisions: dict[str, list[DecisionRow]],
             sources: list[Delivery] | None = None) -> list[EventRow]:
        """``events`` as row tuples (``adapters.event_rows``): the ingest's bulk path."""
        out: list[EventRow] = []
        row_of = self._row
        if sources is None:
            for d in deliveries:
                row = row_of(d, decisions.get(d.queue_id))
                if row is not None:
                    out.append(row)
            return out
        for d in deliveries:
            row = row_of(d, decisions.get(d.queue_id))
            if row is not None:
                out.append(row)
                sources.append(d)
        return out

    def _row(self, d: Delivery, rows: list[DecisionRow] | None) -> EventRow | None:
        metrics = self.metrics
        status = d.status
        time = d.time
        recipient = d.recipient
        info = d.message
        if time is None or recipient is None or info.notification_of is not None:
            metrics.skipped += 1
            return None
        kind = _KIND_OF_STATUS.get(status)
        if kind is None and status != "bounced":
            metrics.skipped += 1  # address probes (deliverable/undeliverable) and the like
            return None
        decision = pick_decision(rows, d) if rows else None
        tenant = decision.tenant if decision is not None else None
        if tenant is None or tenant not in self.snapshot.tenants:
            key = (info.sasl_username, info.sender, info.client_ip)
            tenant = self._tenants[key] if key in self._tenants else self._tenant(d)
        if tenant is None:
            metrics.unknown_tenants += 1
            self._log_unknown(d)
            return None
        relay = d.relay
        relay_host = ""
        if relay:
            relay_host = self._relay_hosts.get(relay) or self._relay_host(relay)
        reason = "delivered"
        if status == "sent":
            pass
        elif status == "expired":
            reason = "expired"
        else:
            reason, hard = self._classify(d, relay_host)
            if kind is None:
                kind = _HARD if hard else _SOFT
        assert kind is not None
        at = recipient.rfind("@")
        recipient_domain = self._clean(recipient[at + 1:]) if at >= 0 else None
        sender = info.sender
        if sender:
            sending_domain = self._senders.get(sender, "")
            if sending_domain == "":
                sending_domain = self._sender_domain(sender)
        else:
            sending_domain = None
        ip = d.egress_ip or (decision.ip if decision is not None else None)
        provider = self._provider.get((recipient_domain, relay_host)) \
            or self._provider_of(recipient_domain, relay_host)
        return (d.key, time, int(time // 86400), kind, tenant, provider,
                self._clean(ip) if ip else None, sending_domain, recipient_domain, reason)

    def _relay_host(self, relay: str) -> str:
        host = relay.partition("[")[0].lower()
        if len(self._relay_hosts) > _CACHE_LIMIT:
            self._relay_hosts.clear()
        self._relay_hosts[relay] = host
        return host

    def _sender_domain(self, sender: str) -> str | None:
        domain = self._clean(sender[sender.rfind("@") + 1:]) if "@" in sender else None
        if len(self._senders) > _CACHE_LIMIT:
            self._senders.clear()
        self._senders[sender] = domain
        return domain

    def _clean(self, value: str) -> str | None:
        found = self._cleaned.get(value, "")
        if found == "":
            found = _clean(value)
            if len(self._cleaned) > _CACHE_LIMIT:
                self._cleaned.clear()
            self._cleaned[value] = found
        return found

    def _tenant(self, d: Delivery) -> str | None:
        info = d.message
        key = (info.sasl_username, info.sender, info.client_ip)
        if key in self._tenants:
            return self._tenants[key]
        found = resolve_tenant(RouteRequest(recipient=d.recipient or "", sender=info.sender,
                                            sasl_username=info.sasl_username,
                                            client_address=info.client_ip), self.snapshot)
        if len(self._tenants) > _CACHE_LIMIT:
            self._tenants.clear()
        self._tenants[key] = found
        return found

    def _provider_of(self, domain: str | None, relay_host: str) -> str:
        key = (domain, relay_host)
        found = self._provider.get(key)
        if found is None:
            found = self.providers.for_domain(domain or "")
            if found == OTHER_PROVIDER and relay_host:
                found = self.providers.for_mx_host(relay_host)
            if len(self._provider) > _CACHE_LIMIT:
                self._provider.clear()
            self._provider[key] = found
        return found

    def _classify(self, d: Delivery, relay_host: str) -> tuple[str, bool]:
        text = d.reply or ""
        site = ".".join(relay_host.rsplit(".", 2)[-2:])
        key = (d.dsn, site, _shape(text))
        found = self._reasons.get(key)
        if found is None:
            result = classify(None, d.dsn, text, remote_mta=relay_host or None)
            found = (result.reason, result.hard)
            if len(self._reasons) > _CACHE_LIMIT:
                self._reasons.clear()
            self._reasons[key] = found
        return found

    def _log_unknown(self, d: Delivery) -> None:
        info = d.message
        who = (info.sasl_username, _domain(info.sender))
        if who in self._unknown:
            return
        if len(self._unknown) < MAX_UNKNOWN_LOGGED:
            self._unknown.add(who)
            log.warning("ingest: no tenant for %s %s (sasl %r, sender domain %r, client %r): "
                        "not stored", d.host, d.queue_id, *who, info.client_ip)
        elif self.metrics.unknown_tenants % 1000 == 0:
            log.warning("ingest: %d deliveries of unknown tenants so far",
                        self.metrics.unknown_tenants)


def _shape(text: str) -> str:
    """What replies that classify alike share: the words, with every word holding an
    address (``@``) or ten or more characters with a digit (queue ids, IPs, session ids)
    replaced by ``#``. The classifier's cache key: a word-level pass, ~10x cheaper than
    a regex over the text."""
    words = text.split()
    for i, word in enumerate(words):
        if "@" in word or (len(word) >= 10 and not _DIGITS.isdisjoint(word)):
            words[i] = "#"
    return " ".join(words)


def lookup_decisions(store: IngestStore, deliveries: Sequence[Delivery]
                     ) -> dict[str, list[DecisionRow]]:
    """The decision-log rows of a batch's queue ids, in one query. (The ids of deliveries
    without a time are asked for too: ``pick_decision`` never uses their rows, and leaving
    them out would cost a Python step per delivery.)"""
    times = [t for t in map(_TIME, deliveries) if t is not None]
    if not times:
        return {}
    since = min(times) - MAX_QUEUE_AGE
    by_id: dict[str, list[DecisionRow]] = {}
    for row in store.decisions_for_queue_ids(list(set(map(_QUEUE_ID, deliveries))),
                                             since=since):
        if row.queue_id is not None:
            by_id.setdefault(row.queue_id, []).append(row)
    return by_id


def store_batch(store: IngestStore, rows: list[EventRow], checkpoint: Checkpoint | None,
                *, with_events: bool) -> AddResult:
    """Store a batch's rows and the read position in one transaction (the store's bulk
    path, ``add_event_rows_at``). ``added_events`` is filled only ``with_events`` (a
    callback wants them; building them costs); ``deltas`` always."""
    stored = store.add_event_rows_at(rows, checkpoint)
    added = stored.added
    return AddResult(added=len(added), duplicates=len(rows) - len(added),
                     added_events=tuple(map(event_of, added)) if with_events else (),
                     deltas=tuple(stored.deltas))


def notify_batch(on_batch: BatchCallback, result: AddResult, sources: Sequence[Delivery],
                 rows: Sequence[EventRow], metrics: IngestMetrics) -> None:
    """Call ``on_batch`` with the newly stored events of a committed batch, each paired
    with its delivery (``sources[i]`` made ``rows[i]``); duplicates (stored by an earlier
    batch, which reported them) are left out. An error is logged and counted, never
    raised: ingestion and the stored position go on whatever the callback does."""
    added = result.added_events
    if len(added) == len(rows):  # all new: the store kept the batch's order
        paired_d: Sequence[Delivery] = sources
        paired_e: Sequence[Event] = added
    else:
        by_key = {row[0]: d for d, row in zip(sources, rows, strict=True)}
        paired_e = [ev for ev in added if ev.key in by_key]
        paired_d = [by_key[ev.key] for ev in paired_e]
    if not paired_e:
        return
    try:
        on_batch(paired_d, paired_e)
    except Exception:  # the callback's bug must not stop ingestion
        metrics.callback_errors += 1
        if metrics.callback_errors <= 10 or metrics.callback_errors % 1000 == 0:
            log.exception("ingest: the on_batch callback failed (%d failures so far); "
                          "the batch is stored, ingestion goes on", metrics.callback_errors)
