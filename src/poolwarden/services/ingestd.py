"""ingestd: Postfix logs in, delivery events out, exactly once (RELIABILITY A4, I1-I8).

``Ingestd(config, store, paths).run_once()`` reads what the followed logs hold now
(``adapters.tailer``), parses and correlates the lines (``wire.postfix_log``,
``wire.postfix_correlate``), maps each delivery to an ``Event`` and stores a batch of
events together with the read position in ONE transaction
(``Store.add_events_at``); ``run()`` polls every ``poll_interval`` seconds.
``import_logs`` is the one-off import of archives (plain or .gz) behind
``poolwarden ingest log``.

**Exactly once.** The stored position never runs ahead of the stored events (one
transaction), and every event's key is the delivery's idempotency key (host, queue id,
recipient, status, the line's time, repeat counter: ``Delivery.key``), so whatever is
read twice (a crash before the commit, an archive imported twice, two ingesters on one
log, a rotated file read again) is stored once. Bytes that can no longer be read are
gaps: counted (``gaps``, ``gap_bytes``, ``gap_lines``), kept in ``gap_records`` and logged
as a warning naming the file and byte range; never hidden.

**Open messages across a restart: re-read, not persisted.** The correlator's state
(which client, SASL user and sender each open message had, which recipients are still
deferred) lives in memory. Each checkpoint also stores where re-reading must start to
rebuild it: the first line of the oldest message still open, in the current file or in
the file read just before it (``resume_fingerprint``), with the log parser's year and
month there (syslog stamps carry no year). After a restart those lines are read again
without storing anything (their events are stored already), so the keys, the expiry of
deferred recipients and the tenant of every open message come out as without the
restart. Limits: a message opened two or more files back, or more than
``max_replay_bytes`` back, is re-read from the start of the file before / this file /
not at all, and loses the lines before that (its deliveries are still stored, but with
what the decision log and the remaining lines say); counted in ``context_lost``.
Persisting the correlator instead would cost a write per open message per batch.

**Mapping.** tenant: the routing agent's decision for the queue id (``decisions`` bound
at END-OF-MESSAGE; same node as the log's host, made within the queue lifetime before
the delivery, the recipient's row preferred), else ``resolve_tenant`` on the SASL user,
sender and client address with the routing snapshot's lookup. Deliveries of no known
tenant are counted (``unknown_tenants``) and logged, not stored; Postfix's own
notifications (bounces it sends) are skipped. Egress IP: the ``pw-A-B-C-D`` transport,
else the decision's IP. Provider: the recipient domain, else the relay host's MX suffix
(relay=gmail-smtp-in.l.google.com -> google). Kind: sent -> delivered, deferred ->
deferred, bounced -> hard or soft bounce by ``bounce_classify.classify(...).hard``,
expired (qmgr gave up, or a bounce saying "message expired") -> soft bounce: the
recipient never got the mail, for a temporary reason. Reason: the classifier's
(``delivered`` / ``expired`` for those two). Time: the log line's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from poolwarden.adapters.tailer import (
    CHUNK_BYTES,
    FINGERPRINT_BYTES,
    MTIME_SLACK,
    ROTATE_WAIT,
    Chunk,
    Gap,
    LogFile,
    Notice,
    Switch,
    Tailer,
)
from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import InputError, StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import OTHER_PROVIDER
from poolwarden.core.policy import RouteRequest, resolve_tenant
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, Checkpoint, DecisionRow, Store
from poolwarden.wire.bounce_classify import classify
from poolwarden.wire.postfix_correlate import Correlator, Delivery
from poolwarden.wire.postfix_log import LogParser

log = logging.getLogger("poolwarden.ingestd")

BATCH_LINES = 5_000  # lines per transaction
POLL_INTERVAL = 0.5
MAX_REPLAY_BYTES = 256 * 1024 * 1024
MAX_QUEUE_AGE = 6 * 86400.0  # Postfix's maximal_queue_lifetime (5 d) plus a day
DECISION_SKEW = 300.0  # a decision may be stamped this much after the delivery line
MAX_UNKNOWN_LOGGED = 100  # distinct unknown senders logged one by one
_CACHE_LIMIT = 50_000
_KIND_OF_STATUS = {"sent": EventKind.DELIVERED, "deferred": EventKind.DEFERRED,
                   "expired": EventKind.SOFT_BOUNCE}
_ADDRESS = re.compile(r"[^\s<>\"'()\[\],;]+@[^\s<>\"'()\[\],;]+")
_BRACKETED = re.compile(r"\[[0-9A-Fa-f.:]+\]")
_TOKEN_ID = re.compile(r"\b(?=[\w.-]*\d)[\w.-]{10,}")
Hook = Callable[[str], None]


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
    lag_bytes: int = 0
    gap_records: deque[Gap] = field(default_factory=lambda: deque(maxlen=1000))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "gap_records"}


# -- parsing and correlating ------------------------------------------------------


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


class TrackingCorrelator(Correlator):
    """A ``Correlator`` that remembers where each open message began (file serial, byte
    offset, parser state), so a checkpoint can say where re-reading must start."""

    def __init__(self, parser: LogParser) -> None:
        super().__init__()
        self.parser = parser
        self.serial = 0  # the file of the line being fed
        self.line_offset = 0  # the byte offset of the line being fed
        self._began: dict[tuple[str | None, str], tuple[int, int, int | None, int]] = {}

    def _open(self, key: tuple[str | None, str]) -> Any:
        message = super()._open(key)
        p = self.parser
        self._began[key] = (self.serial, self.line_offset, p._year, p._month)
        if len(self._began) > 2 * len(self._messages) + 4096:
            self._began = {k: v for k, v in self._began.items() if k in self._messages}
        return message

    def oldest(self) -> tuple[int, int, int | None, int] | None:
        """Where the oldest open message began (messages keep their opening order)."""
        for key in self._messages:
            return self._began.get(key)
        return None


class Pipeline:
    """Lines -> deliveries for one stream (a followed path, or one import)."""

    def __init__(self, parser: LogParser) -> None:
        self.parser = parser
        self.correlator = TrackingCorrelator(parser)
        self.deliveries: list[Delivery] = []

    def set_parser(self, parser: LogParser) -> None:
        self.parser = parser
        self.correlator.parser = parser

    def feed(self, serial: int, start: int, data: bytes, *, emit: bool) -> int:
        """Feed complete lines (``data`` ends with a newline); returns how many."""
        corr = self.correlator
        corr.serial = serial
        parse, feed, out = self.parser.parse, corr.feed, self.deliveries
        pos = start
        if data.isascii():  # byte offsets are character offsets
            lines = data.decode("ascii").split("\n")
            lines.pop()
            for line in lines:
                corr.line_offset = pos
                pos += len(line) + 1
                record = parse(line)
                if record is not None and record.queue_id is not None:
                    got = feed(record)
                    if got and emit:
                        out.extend(got)
            return len(lines)
        raw_lines = data.split(b"\n")
        raw_lines.pop()
        for raw in raw_lines:
            corr.line_offset = pos
            pos += len(raw) + 1
            record = parse(raw.decode("utf-8", "replace"))
            if record is not None and record.queue_id is not None:
                got = feed(record)
                if got and emit:
                    out.extend(got)
        return len(raw_lines)

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

    def events(self, deliveries: Iterable[Delivery],
               decisions: dict[str, list[DecisionRow]]) -> list[Event]:
        out: list[Event] = []
        for d in deliveries:
            event = self._event(d, decisions.get(d.queue_id))
            if event is not None:
                out.append(event)
        return out

    def _event(self, d: Delivery, rows: list[DecisionRow] | None) -> Event | None:
        metrics = self.metrics
        status = d.status
        if d.time is None or d.recipient is None or d.message.notification_of is not None:
            metrics.skipped += 1
            return None
        kind = _KIND_OF_STATUS.get(status)
        if kind is None and status != "bounced":
            metrics.skipped += 1  # address probes (deliverable/undeliverable) and the like
            return None
        decision = pick_decision(rows, d) if rows else None
        tenant = decision.tenant if decision is not None else None
        if tenant is None or tenant not in self.snapshot.tenants:
            tenant = self._tenant(d)
        if tenant is None:
            metrics.unknown_tenants += 1
            self._log_unknown(d)
            return None
        relay_host = (d.relay or "").partition("[")[0].lower()
        reason = "delivered"
        if status == "sent":
            pass
        elif status == "expired":
            reason = "expired"
        else:
            reason, hard = self._classify(d, relay_host)
            if kind is None:
                kind = EventKind.HARD_BOUNCE if hard else EventKind.SOFT_BOUNCE
        assert kind is not None
        recipient_domain = _domain(d.recipient)
        ip = d.egress_ip or (decision.ip if decision is not None else None)
        return Event(key=d.key, time=d.time, kind=kind, tenant=tenant,
                     provider=self._provider_of(recipient_domain, relay_host),
                     ip=_clean(ip), sending_domain=_domain(d.message.sender),
                     recipient_domain=recipient_domain, reason=reason)

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
        key = (d.dsn, site, _TOKEN_ID.sub("#", _BRACKETED.sub("[ip]", _ADDRESS.sub("a@b", text))))
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


def lookup_decisions(store: Store, deliveries: Sequence[Delivery]
                     ) -> dict[str, list[DecisionRow]]:
    """The decision-log rows of a batch's queue ids, in one query."""
    timed = [d for d in deliveries if d.time is not None]
    if not timed:
        return {}
    since = min(d.time for d in timed if d.time is not None) - MAX_QUEUE_AGE
    by_id: dict[str, list[DecisionRow]] = {}
    for row in store.decisions_for_queue_ids(sorted({d.queue_id for d in timed}),
                                             since=since):
        if row.queue_id is not None:
            by_id.setdefault(row.queue_id, []).append(row)
    return by_id


# -- following log paths ---------------------------------------------------------------


class _Source:
    """One followed path: its tailer, its stream and what is committed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.clear()

    def clear(self) -> None:
        self.tailer: Tailer | None = None
        self.pipeline: Pipeline | None = None
        self.checkpoint: Checkpoint | None = None  # as stored
        self.cur: LogFile | None = None
        self.prev: LogFile | None = None
        self.offset = 0  # end of the last consumed line of ``cur``
        self.ends: dict[int, int] = {}  # serial -> offset reached (cur and prev)
        self.starts: dict[int, tuple[int | None, int]] = {}  # serial -> parser state at 0
        self.lines = 0  # lines consumed since the last commit
        self.dirty = False  # something to commit (lines or a new file)

    def reset(self) -> None:
        if self.tailer is not None:
            self.tailer.close()
        self.clear()

    def enter(self, item: Switch) -> None:
        if item.file is not self.cur:
            self.prev, self.cur = self.cur, item.file
            keep = {item.file.serial} | ({self.prev.serial} if self.prev else set())
            self.ends = {k: v for k, v in self.ends.items() if k in keep}
            self.starts = {k: v for k, v in self.starts.items() if k in keep}
        self.offset = item.offset
        self.ends[item.file.serial] = item.offset
        if item.offset == 0 and self.pipeline is not None:
            self.starts.setdefault(item.file.serial, parser_state(self.pipeline.parser))


class Ingestd:
    """Follows Postfix log paths into the store (see the module docstring)."""

    def __init__(self, config: LoadedConfig, store: Store,
                 paths: Sequence[str | os.PathLike[str]], *, batch_lines: int = BATCH_LINES,
                 poll_interval: float = POLL_INTERVAL, rotate_wait: float = ROTATE_WAIT,
                 mtime_slack: float = MTIME_SLACK, fingerprint_bytes: int = FINGERPRINT_BYTES,
                 chunk_bytes: int = CHUNK_BYTES, max_replay_bytes: int = MAX_REPLAY_BYTES,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 hook: Hook | None = None, on_added: Callable[[AddResult], None] | None = None,
                 snapshot: Snapshot | None = None) -> None:
        if snapshot is None:
            from poolwarden.services.engine import Engine

            now = clock()
            snapshot = Engine(config, store, now=now).snapshot(now)
        self.store = store
        self.metrics = IngestMetrics()
        self.mapper = DeliveryMapper(snapshot, self.metrics)
        self.batch_lines = batch_lines
        self.poll_interval = poll_interval
        self.max_replay_bytes = max_replay_bytes
        self._tailer_options: dict[str, Any] = {
            "fingerprint_bytes": fingerprint_bytes, "chunk_bytes": chunk_bytes,
            "rotate_wait": rotate_wait, "mtime_slack": mtime_slack, "clock": monotonic}
        self._clock = clock
        self._hook = hook
        self._on_added = on_added
        self.sources = [_Source(os.fspath(p)) for p in paths]

    # -- the loop ------------------------------------------------------------------

    def run_once(self) -> IngestMetrics:
        """Read what every path holds now; commit per batch and at the end."""
        for src in self.sources:
            try:
                self._run(src)
            except (StoreError, OSError) as exc:
                self.metrics.errors += 1
                log.error("ingest: %s: %s; continuing from the stored checkpoint", src.path,
                          exc)
                src.reset()
        self.metrics.lag_bytes = sum(src.tailer.lag() for src in self.sources
                                     if src.tailer is not None)
        return self.metrics

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set; store work runs on a worker thread."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.run_once)
                except Exception:  # a bug must not stop ingestion for good
                    self.metrics.errors += 1
                    log.exception("ingest: unexpected error; restarting from the checkpoints")
                    for src in self.sources:
                        src.reset()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_interval)
        finally:
            self.close()

    def close(self) -> None:
        for src in self.sources:
            if src.tailer is not None:
                src.tailer.close()

    # -- one source --------------------------------------------------------------------

    def _run(self, src: _Source) -> None:
        metrics = self.metrics
        if src.tailer is None:
            src.checkpoint = self.store.checkpoint(src.path)
            src.tailer = Tailer(src.path, src.checkpoint, **self._tailer_options)
        for item in src.tailer.poll():
            if isinstance(item, Chunk):
                self._hook_at("read")
                pipeline = self._pipeline(src, item.file)
                lines = pipeline.feed(item.file.serial, item.start, item.data,
                                      emit=not item.replay)
                end = item.start + len(item.data)
                if item.replay:
                    metrics.lines_replayed += lines
                    continue
                metrics.lines_read += lines
                metrics.bytes_read += len(item.data)
                src.offset = src.ends[item.file.serial] = end
                src.lines += lines
                src.dirty = True
                if src.lines >= self.batch_lines:
                    self._commit(src)
            elif isinstance(item, Switch):
                self._switch(src, item)
            elif isinstance(item, Gap):
                self._gap(item)
            else:
                self._notice(item)
        if src.dirty:
            self._commit(src)

    def _pipeline(self, src: _Source, file: LogFile) -> Pipeline:
        if src.pipeline is None:
            cp = src.checkpoint
            parser = (parser_at(cp.year, cp.month, file.mtime) if cp is not None
                      else LogParser(reference=file.mtime))
            src.pipeline = Pipeline(parser)
        return src.pipeline

    def _switch(self, src: _Source, item: Switch) -> None:
        self._pipeline(src, item.file)
        if item.replay:
            src.enter(item)
            return
        if src.dirty and item.file is not src.cur:
            self._commit(src)  # a batch never spans two files
        src.enter(item)
        if item.reason != "resume":
            src.dirty = True  # the new file is stored even before its first line
        if src.checkpoint is None:
            # the very first file: record it at once, so that a crash before the first
            # batch and a rotation after it still find the lines it got (not just the next)
            self._commit(src)
        if item.reason in ("rotated", "unread-rotated"):
            self.metrics.rotations += 1
            log.info("ingest: %s: now reading %s (%s)", src.path, item.file.name, item.reason)
        elif item.reason == "truncated":
            self.metrics.truncations += 1
            log.warning("ingest: %s was truncated or replaced in place: reading it from 0",
                        src.path)

    def _gap(self, gap: Gap) -> None:
        metrics = self.metrics
        metrics.gaps += 1
        metrics.gap_bytes += gap.known_bytes
        metrics.gap_lines += gap.lines or 0
        metrics.gap_records.append(gap)
        log.warning("ingest: GAP in %s: %s", gap.source, gap.describe())

    def _notice(self, notice: Notice) -> None:
        if notice.what == "context-lost":
            self.metrics.context_lost += 1
            log.warning("ingest: %s", notice.detail)
        elif notice.what == "possible-gap":
            log.warning("ingest: POSSIBLE GAP: %s", notice.detail)
        else:
            log.info("ingest: %s", notice.detail)

    def _hook_at(self, point: str) -> None:
        if self._hook is not None:
            self._hook(point)

    # -- committing --------------------------------------------------------------------

    def _resume(self, src: _Source) -> tuple[str | None, int, int | None, int]:
        """Where re-reading must start after a restart (see the module docstring)."""
        assert src.cur is not None
        assert src.pipeline is not None
        cur, prev, offset = src.cur, src.prev, src.offset
        here = (None, offset, *parser_state(src.pipeline.parser))
        oldest = src.pipeline.correlator.oldest()
        if oldest is None:
            return here
        serial, at, year, month = oldest
        if serial == cur.serial and at <= offset:
            resume: tuple[str | None, int, int | None, int] = (None, at, year, month)
            cost = offset - at
        elif prev is not None and prev.serial in src.ends:
            prev_end = src.ends[prev.serial]
            if serial == prev.serial and at <= prev_end:
                resume = (prev.fingerprint(prev_end), at, year, month)
                cost = prev_end - at + offset
            else:  # older still: from the start of the file before
                resume = (prev.fingerprint(prev_end), 0,
                          *src.starts.get(prev.serial, (year, month)))
                cost = prev_end + offset
        else:
            resume = (None, 0, *src.starts.get(cur.serial, (year, month)))
            cost = offset
        if cost > self.max_replay_bytes:
            if offset <= self.max_replay_bytes and cur.serial in src.starts:
                return (None, 0, *src.starts[cur.serial])
            return here
        return resume

    def _commit(self, src: _Source) -> None:
        assert src.pipeline is not None
        deliveries = src.pipeline.take()
        self.metrics.deliveries += len(deliveries)
        events = self.mapper.events(deliveries, lookup_decisions(self.store, deliveries))
        checkpoint = None
        if src.cur is not None:
            resume_fp, resume_offset, year, month = self._resume(src)
            cur = src.cur
            checkpoint = Checkpoint(
                source=src.path, fingerprint=cur.fingerprint(src.offset), inode=cur.inode,
                device=cur.device, offset=src.offset, resume_offset=resume_offset,
                updated_at=self._clock(), mtime=cur.mtime, resume_fingerprint=resume_fp,
                year=year, month=month)
        self._hook_at("parsed")
        result = self.store.add_events_at(events, checkpoint)
        self._hook_at("committed")
        src.checkpoint = checkpoint
        src.lines = 0
        src.dirty = False
        self.metrics.commits += 1
        self.metrics.events_stored += result.added
        self.metrics.duplicates += result.duplicates
        if self._on_added is not None:
            self._on_added(result)
        self._hook_at("updated")


# -- one-off import -----------------------------------------------------------------------


@dataclass(slots=True)
class ImportLogsResult:
    files: int
    metrics: IngestMetrics
    unterminated: int  # files whose last line had no newline (not imported)


def _open_archive(path: Path) -> tuple[Any, Any]:
    """(reader of the content, the underlying file for progress): gzip by magic number."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    raw.seek(0)
    return raw, raw


def import_logs(config: LoadedConfig, store: Store, files: Sequence[Path], *,
                batch_lines: int = 20_000, progress: Callable[[int], None] | None = None,
                snapshot: Snapshot | None = None, now: float | None = None) -> ImportLogsResult:
    """Import Postfix log archives (plain or gzip), oldest first (by modification time).

    One correlator runs over all of them, so a message spanning two archives keeps its
    context; each file's year-less dates are placed by its own modification time.
    Idempotent: importing the same files again adds nothing. No checkpoints are written
    (a followed path's position is never moved by an import). A last line without a
    newline is not imported (a file still being written will finish it).
    """
    if snapshot is None:
        from poolwarden.services.engine import Engine

        at = time.time() if now is None else now
        snapshot = Engine(config, store, now=at).snapshot(at)
    metrics = IngestMetrics()
    mapper = DeliveryMapper(snapshot, metrics)
    pipeline = Pipeline(LogParser(reference=0.0))
    ordered = sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))
    unterminated = 0
    pending = 0

    def commit() -> None:
        deliveries = pipeline.take()
        metrics.deliveries += len(deliveries)
        events = mapper.events(deliveries, lookup_decisions(store, deliveries))
        result = store.add_events_at(events, None)
        metrics.events_stored += result.added
        metrics.duplicates += result.duplicates
        metrics.commits += 1

    for serial, path in enumerate(ordered, start=1):
        try:
            reader, raw = _open_archive(path)
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc
        pipeline.set_parser(LogParser(reference=mtime))
        offset, carry, done = 0, b"", 0
        with raw, reader:
            while True:
                try:
                    block = reader.read(CHUNK_BYTES)
                except (OSError, EOFError) as exc:
                    raise InputError(f"unreadable archive: {exc}", source=str(path)) from exc
                if progress is not None:
                    position = raw.tell()
                    progress(position - done)
                    done = position
                if not block:
                    break
                data = carry + block
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                if cut:
                    lines = pipeline.feed(serial, offset, data[:cut], emit=True)
                    offset += cut
                    metrics.lines_read += lines
                    metrics.bytes_read += cut
                    pending += lines
                    if pending >= batch_lines:
                        commit()
                        pending = 0
        if carry:
            unterminated += 1
    commit()
    return ImportLogsResult(files=len(ordered), metrics=metrics, unterminated=unterminated)
