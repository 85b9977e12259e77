"""ingestd: Postfix logs in, delivery events out, exactly once (docs/testing.md A4, I1-I8).

``Ingestd(config, store, paths).run_once()`` reads what the followed logs hold now
(``adapters.tailer``), parses and correlates the lines (``wire.postfix_log``,
``wire.postfix_correlate``), maps each delivery to an ``Event`` and stores a batch of
events together with the read position in ONE transaction
(``Store.add_events_at``); ``run()`` polls every ``poll_interval`` seconds.
The one-off import of archives behind ``poolwarden ingest log`` (``services.ingest.
log_import``) shares this module's writer, limits and the pipeline.

**Per-batch callback.** ``on_batch(deliveries, events)`` (both ``Ingestd`` and
``log_import.import_logs``) is called after a batch of events and its checkpoint are committed,
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
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from poolwarden.adapters.event_rows import EventRow
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
from poolwarden.core.errors import StoreError
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
