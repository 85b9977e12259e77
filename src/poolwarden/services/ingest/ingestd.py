"""ingestd: Postfix logs in, delivery events out, exactly once (RELIABILITY A4, I1-I8).

``Ingestd(config, store, paths).run_once()`` reads what the followed logs hold now
(``adapters.tailer``), parses and correlates the lines (``wire.postfix_log``,
``wire.postfix_correlate``), maps each delivery to an ``Event`` and stores a batch of
events together with the read position in ONE transaction
(``Store.add_events_at``); ``run()`` polls every ``poll_interval`` seconds.
``import_logs`` is the one-off import of archives (plain or .gz) behind
``poolwarden ingest log``; it keeps a checkpoint per imported content (not per path), so
a content imported before, under any name or gzipped, is not parsed again and a grown
file is parsed from where the last import stopped (see its docstring).

**Per-batch callback.** ``on_batch(deliveries, events)`` (both ``Ingestd`` and
``import_logs``) is called after a batch of events and its checkpoint are committed,
with the events that batch newly stored and, at the same index, the ``Delivery`` each
was made from (``deliveries[i].key == events[i].key``: reply text, DSN, relay, egress IP
next to the event's tenant and provider). It runs on the thread that stored the batch
(the worker thread when ``pipelined``), in batch order. An exception it raises is logged
and counted (``metrics.callback_errors``), never stops ingestion. Delivery to it is at
most once: a crash between the commit and the call, or a duplicate (stored earlier),
is not passed again. Without a callback nothing extra is built.

**Where batches are stored.** In the caller's thread; with ``pipelined``, on a writer
thread while the next batch is parsed; with ``store_process`` too (serve's follower and
``poolwarden ingest log``), by a child process for a SQLite file
(``services.ingest.store_worker``), since the store's work and the parser's would otherwise take
turns for the GIL. The callbacks and hooks run in this process either way.

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
not at all, and loses the lines before that: its deliveries are still read, with what
the decision log and the remaining lines say (no tenant left: counted and logged as
unknown). A file to re-read that is gone is counted in ``context_lost``. Persisting the
correlator instead would cost a write per open message per batch; re-reading costs
nothing until a restart. Keys do not depend on the read position, so re-read lines that
do reach the store are duplicates it drops.

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
import functools
import gzip
import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolwarden.adapters.event_rows import EventRow
from poolwarden.adapters.logfiles import fingerprint_length, fingerprint_of
from poolwarden.adapters.tailer import (
    CHUNK_BYTES,
    FINGERPRINT_BYTES,
    MAX_LINE_BYTES,
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
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, Checkpoint, Store
from poolwarden.services.ingest.pipeline import (
    BatchCallback,
    DeliveryMapper,
    Hook,
    IngestMetrics,
    Pipeline,
    gc_paused,
    lookup_decisions,
    notify_batch,
    parser_at,
    parser_state,
    store_batch,
)
from poolwarden.services.ingest.store_worker import StoreWorker, store_batch_in, worker_url
from poolwarden.wire.postfix_correlate import Delivery
from poolwarden.wire.postfix_log import LogParser

log = logging.getLogger("poolwarden.ingestd")

# lines per transaction at most (a catch-up; live, one per poll). Each commit of the
# SQLite store also checkpoints its WAL; at 200,000 lines those cost a third of what
# they cost at 50,000 (bench/bench_ingest_synthetic.py), and a batch is ~35,000 deliveries.
BATCH_LINES = 200_000
# The first batch of each run is a quarter of that: the store starts while the parser
# reads on, instead of waiting for a whole batch (a catch-up's first events come sooner too)
FIRST_BATCH_SHARE = 4
POLL_INTERVAL = 0.5
MAX_REPLAY_BYTES = 256 * 1024 * 1024


# -- following log paths ---------------------------------------------------------------


class Writer:
    """Stores batches one at a time and in order. ``threaded``: on a worker thread while
    the caller prepares the next batch (the store's C code runs without the GIL), at most
    one in flight; ``wait`` returns when it is stored and re-raises its error."""

    def __init__(self, *, threaded: bool) -> None:
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-store")
                      if threaded else None)
        self._pending: Future[None] | None = None

    def submit(self, store_batch: Callable[[], None]) -> None:
        if self._pool is None:
            store_batch()
            return
        self.wait()
        self._pending = self._pool.submit(store_batch)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


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
        self.commits_this_run = 0  # batches committed in this run (the first is smaller)
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
                 snapshot: Snapshot | None = None, pipelined: bool = False,
                 on_batch: BatchCallback | None = None,
                 current_snapshot: Callable[[], Snapshot | None] | None = None,
                 store_process: bool = False) -> None:
        if snapshot is None and current_snapshot is not None:
            snapshot = current_snapshot()
        if snapshot is None:
            from poolwarden.services.reputation.engine import Engine

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
        self._on_batch = on_batch
        # serve's routing snapshot, read at each batch: tenants a reload adds are mapped
        self._current_snapshot = current_snapshot
        self.sources = [_Source(os.fspath(p)) for p in paths]
        self._writer = Writer(threaded=pipelined)
        # ``store_process`` (with ``pipelined``): batches for a SQLite file are stored by a
        # child process (services.ingest.store_worker), which works beside the parser
        self._worker_url = worker_url(store) if pipelined and store_process else None
        self._worker: StoreWorker | None = None
        if self._worker_url is not None:
            self._worker = StoreWorker(self._worker_url)

    # -- the loop ------------------------------------------------------------------

    def run_once(self) -> IngestMetrics:
        """Read what every path holds now; commit per batch and at the end."""
        with gc_paused():
            self._run_all()
        return self.metrics

    def _run_all(self) -> None:
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

    def wait_ready(self) -> None:
        """Block until the store worker (if any) has started: for a benchmark's clock."""
        if self._worker is not None:
            self._worker.wait_ready()

    def worker_cpu_seconds(self) -> float:
        """CPU time of the store worker process so far (0 without one)."""
        cpu = self._worker.cpu_seconds() if self._worker is not None else None
        return cpu or 0.0

    def close(self) -> None:
        self._writer.close()
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        for src in self.sources:
            if src.tailer is not None:
                src.tailer.close()

    # -- one source --------------------------------------------------------------------

    def _run(self, src: _Source) -> None:
        metrics = self.metrics
        src.commits_this_run = 0
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
                if src.lines >= (self.batch_lines if src.commits_this_run
                                 else max(1, self.batch_lines // FIRST_BATCH_SHARE)):
                    self._commit(src)
            elif isinstance(item, Switch):
                self._switch(src, item)
            elif isinstance(item, Gap):
                self._gap(item)
            else:
                self._notice(item)
        if src.dirty:
            self._commit(src)
        self._writer.wait()

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
        oldest = src.pipeline.correlator.oldest_mark()
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
        """Map the batch and store it with the position after it (one transaction)."""
        assert src.pipeline is not None
        deliveries = src.pipeline.take()
        self.metrics.deliveries += len(deliveries)
        sources: list[Delivery] | None = [] if self._on_batch is not None else None
        if self._current_snapshot is not None:
            fresh = self._current_snapshot()
            if fresh is not None:
                self.mapper.use(fresh)
        rows = self.mapper.rows(deliveries, lookup_decisions(self.store, deliveries), sources)
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
        if src.lines:
            src.commits_this_run += 1
        src.lines = 0
        src.dirty = False
        self._writer.submit(functools.partial(self._store, src, rows, checkpoint, sources))

    def _store(self, src: _Source, rows: list[EventRow], checkpoint: Checkpoint | None,
               sources: list[Delivery] | None = None) -> None:
        with_events = self._on_added is not None or self._on_batch is not None
        if self._worker_url is None:
            result = store_batch(self.store, rows, checkpoint, with_events=with_events)
        else:
            result = self._store_in_worker(rows, checkpoint, with_events)
        self._hook_at("committed")
        src.checkpoint = checkpoint
        self.metrics.commits += 1
        self.metrics.events_stored += result.added
        self.metrics.duplicates += result.duplicates
        if self._on_added is not None:
            self._on_added(result)
        if self._on_batch is not None and sources is not None:
            notify_batch(self._on_batch, result, sources, rows, self.metrics)
        self._hook_at("updated")

    def _store_in_worker(self, rows: list[EventRow], checkpoint: Checkpoint | None,
                         with_events: bool) -> AddResult:
        """``store_batch`` by the worker process, started again if it died."""
        assert self._worker_url is not None
        if self._worker is None or not self._worker.alive:
            if self._worker is not None:
                self._worker.close()
            self._worker = StoreWorker(self._worker_url)
        return store_batch_in(self._worker, rows, checkpoint, with_events=with_events)


# -- one-off import -----------------------------------------------------------------------


@dataclass(slots=True)
class ImportLogsResult:
    files: int
    metrics: IngestMetrics
    unterminated: int  # files whose last line had no newline (not imported)
    known_files: int = 0  # files whose content was imported before, read on from there
    skipped_bytes: int = 0  # bytes of those not parsed again (imported already)


# Imports keep one checkpoint per imported *content*, source ``import:<fingerprint>``, the
# fingerprint of the first IMPORT_ID_BYTES of the decompressed content: the same bytes
# under a rotated name or gzipped have the same identity, and no followed path (an absolute
# path) ever starts with "import:".
IMPORT_SOURCE = "import:"
IMPORT_ID_BYTES = 64 * 1024
# The checkpoint's ``fingerprint`` is that of the IMPORT_TAIL_BYTES before ``offset``: a
# content with the same head but other bytes where the last import stopped is another file.
IMPORT_TAIL_BYTES = 4096


def import_source(head: bytes) -> str:
    """The checkpoint source of an imported content whose first bytes are ``head``."""
    return IMPORT_SOURCE + fingerprint_of(head[:IMPORT_ID_BYTES])


def _open_archive(path: Path) -> tuple[Any, Any]:
    """(reader of the content, the underlying file for progress): gzip by magic number."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    raw.seek(0)
    return raw, raw


def _read_at(reader: Any, offset: int, size: int) -> bytes:
    """``size`` bytes of the content from ``offset`` (fewer at its end); a gzip stream seeks
    by decompressing (backwards: from its start again)."""
    reader.seek(offset)
    data = b""
    while len(data) < size and (more := reader.read(size - len(data))):
        data += more
    return data


def _known_offset(reader: Any, mark: Checkpoint | None) -> tuple[int, bytes]:
    """How much of this content the last import stored and the bytes before that point:
    ``mark.offset`` when those bytes are the ones it read, else 0 (another content with
    the same head)."""
    if mark is None or mark.offset <= 0:
        return 0, b""
    size = fingerprint_length(mark.fingerprint)
    tail = _read_at(reader, mark.offset - size, size)
    if fingerprint_of(tail) != mark.fingerprint:
        return 0, b""
    return mark.offset, tail


def import_logs(config: LoadedConfig, store: Store, files: Sequence[Path], *,
                batch_lines: int = BATCH_LINES, progress: Callable[[int], None] | None = None,
                snapshot: Snapshot | None = None, now: float | None = None,
                pipelined: bool = False, on_batch: BatchCallback | None = None,
                store_process: bool = False,
                max_replay_bytes: int = MAX_REPLAY_BYTES) -> ImportLogsResult:
    """Import Postfix log archives (plain or gzip), oldest first (by modification time).

    One correlator runs over all of them, so a message spanning two archives keeps its
    context; each file's year-less dates are placed by its own modification time.
    Idempotent: importing the same files again adds nothing. A last line without a
    newline is not imported (a file still being written will finish it). ``pipelined``
    stores each batch on a worker thread while the next is parsed (a file store only:
    not an in-memory SQLite database, whose one connection cannot be shared), and with
    ``store_process`` in a child process for a SQLite file (``services.ingest.store_worker``).

    **Per-content checkpoints.** Each batch is stored with a checkpoint of the content it
    came from (``import_source``: the first 64 KiB, decompressed), in the same transaction,
    and each file ends with one. Importing a content again reads its head and the 4 KiB
    before the recorded offset, and when those match, parses nothing before that offset:
    the same file (renamed, or gzipped) costs two small reads, and a file that grew since
    parses only the appended lines. The correlator needs the earlier lines of messages
    still open at the offset (their client, sender, SASL user, deferrals), so the checkpoint
    also keeps where the oldest of them began (as ``Ingestd``'s do): those lines are re-read
    without storing anything (``lines_replayed``) before the new ones; likewise the tail of
    a file imported before is re-read when a later file of the same import is new, so a
    message spanning the two keeps its context. A message that began in an earlier file,
    or more than ``max_replay_bytes`` back, re-reads the whole file or loses that context.
    Deliveries are keyed by content, not position, so a different file with the same first
    64 KiB and other bytes at the offset is simply read whole (its repeats are duplicates).
    Imports never touch a followed path's checkpoint.
    """
    if snapshot is None:
        from poolwarden.services.reputation.engine import Engine

        at = time.time() if now is None else now
        snapshot = Engine(config, store, now=at).snapshot(at)
    metrics = IngestMetrics()
    mapper = DeliveryMapper(snapshot, metrics)
    pipeline = Pipeline(LogParser(reference=0.0))
    ordered = sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))
    result = ImportLogsResult(files=len(ordered), metrics=metrics, unterminated=0)
    pending = 0

    writer = Writer(threaded=pipelined)
    url = worker_url(store) if pipelined and store_process else None
    worker: StoreWorker | None = None

    def start_worker() -> None:
        """Start the store's child process once there is something to parse (it starts
        while the first batch is parsed; a content imported already never needs it)."""
        nonlocal worker
        if url is not None and worker is None:
            worker = StoreWorker(url)

    def stored(rows: list[EventRow], sources: list[Delivery] | None,
               checkpoint: Checkpoint | None) -> None:
        with_events = on_batch is not None
        added = (store_batch(store, rows, checkpoint, with_events=with_events)
                 if worker is None
                 else store_batch_in(worker, rows, checkpoint, with_events=with_events))
        metrics.events_stored += added.added
        metrics.duplicates += added.duplicates
        metrics.commits += 1
        if on_batch is not None and sources is not None:
            notify_batch(on_batch, added, sources, rows, metrics)

    def commit(checkpoint: Checkpoint | None) -> None:
        deliveries = pipeline.take()
        metrics.deliveries += len(deliveries)
        sources: list[Delivery] | None = [] if on_batch is not None else None
        rows = mapper.rows(deliveries, lookup_decisions(store, deliveries), sources)
        writer.submit(functools.partial(stored, rows, sources, checkpoint))

    def mark(source: str, serial: int, offset: int, tail: bytes, st: os.stat_result
             ) -> Checkpoint | None:
        """The checkpoint of a content read up to ``offset`` (None before any line)."""
        if offset <= 0:
            return None
        resume = offset
        year, month = parser_state(pipeline.parser)
        oldest = pipeline.correlator.oldest()
        if oldest is not None:
            began, at, year_at, month_at = oldest
            if began == serial:
                resume, year, month = at, year_at, month_at
            else:  # began in an earlier file: the whole of this one rebuilds what it can
                resume, year, month = 0, None, 0
        if offset - resume > max_replay_bytes:
            resume, (year, month) = offset, parser_state(pipeline.parser)
        return Checkpoint(source=source, fingerprint=fingerprint_of(tail), inode=st.st_ino,
                          device=st.st_dev, offset=offset, resume_offset=resume,
                          updated_at=time.time(), mtime=st.st_mtime, year=year, month=month)

    def feed(reader: Any, raw: Any, serial: int, offset: int, end: int | None,
             source: str, st: os.stat_result, tail: bytes = b"") -> tuple[int, bool]:
        """Feed the content from ``offset`` (a line start; ``tail``: the bytes before it)
        to ``end`` (None: its end; else a replay: nothing emitted, nothing counted as
        read); returns the offset reached and whether a last line had no newline."""
        nonlocal pending
        replay = end is not None
        carry, done = b"", raw.tell()
        while True:
            size = CHUNK_BYTES if end is None else min(CHUNK_BYTES, end - offset - len(carry))
            try:
                block = reader.read(size) if size > 0 else b""
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"unreadable archive: {exc}", source=str(path_of[serial])
                                 ) from exc
            if progress is not None and not replay:
                position = raw.tell()
                progress(position - done)
                done = position
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > MAX_LINE_BYTES:
                data += b"\n"  # not a log line: consumed as one, as the tailer does
                cut = len(data)
            carry = data[cut:]
            if not cut:
                continue
            lines = pipeline.feed(serial, offset, data[:cut], emit=not replay)
            offset += cut
            if replay:
                metrics.lines_replayed += lines
                continue
            tail = data[max(0, cut - IMPORT_TAIL_BYTES):cut] if cut >= IMPORT_TAIL_BYTES \
                else (tail + data[:cut])[-IMPORT_TAIL_BYTES:]
            tails[serial] = tail
            metrics.lines_read += lines
            metrics.bytes_read += cut
            pending += lines
            if pending >= batch_lines:
                commit(mark(source, serial, offset, tail, st))
                pending = 0
        return offset, bool(carry)

    path_of: dict[int, Path] = {}
    tails: dict[int, bytes] = {}

    def read(serial: int, path: Path, last: bool) -> None:
        """Import one archive, from where an earlier import of its content stopped."""
        nonlocal pending
        path_of[serial] = path
        try:
            reader, raw = _open_archive(path)
            st = os.fstat(raw.fileno())
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from exc
        with raw, reader:
            try:
                source = import_source(_read_at(reader, 0, IMPORT_ID_BYTES))
                known = store.checkpoint(source)
                offset, before = _known_offset(reader, known)
                more = offset > 0 and bool(_read_at(reader, offset, 1))
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"unreadable archive: {exc}", source=str(path)) from exc
            if known is None or not offset:
                start_worker()
                pipeline.set_parser(LogParser(reference=st.st_mtime))
                reader.seek(0)
                offset = 0
            else:
                result.known_files += 1
                if not more and last:  # nothing new, and no later file needs its context
                    result.skipped_bytes += offset
                    if progress is not None:
                        progress(st.st_size)
                    return
                start_worker()
                pipeline.set_parser(parser_at(known.year, known.month, st.st_mtime))
                reader.seek(known.resume_offset)
                feed(reader, raw, serial, known.resume_offset, offset, source, st)
                result.skipped_bytes += offset
                reader.seek(offset)
                if progress is not None:
                    progress(raw.tell())
            end, unterminated = feed(reader, raw, serial, offset, None, source, st, before)
            result.unterminated += unterminated
        if end > offset:  # this file's final checkpoint, with the rest of its lines
            commit(mark(source, serial, end, tails[serial], st))
            pending = 0

    try:
        with gc_paused():
            for serial, path in enumerate(ordered, start=1):
                read(serial, path, serial == len(ordered))
            if pipeline.deliveries:
                commit(None)
            writer.wait()
    finally:
        writer.close()
        if worker is not None:
            worker.close()
    return result
