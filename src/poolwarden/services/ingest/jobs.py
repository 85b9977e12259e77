"""Outcome ingestion inside ``poolwarden serve``: Postfix log followers and the feedback LMTP.

``IngestJobs(config, ...)`` runs, beside the routing agent and when configured:

* one ``Ingestd`` following the ``[ingest] logs`` files (exactly once, checkpoints in the
  store), its reads and store writes on worker threads, never on the event loop;
* the feedback LMTP listener (``[ingest] lmtp``, at ``feedback.lmtp_listen``) with its
  own ``FeedbackService``; messages are processed on the listener's worker thread.

Serve hands in its reputation ``Engine``: the listener stores through a view of it
(``Engine.bound_to``), and ``on_added`` is told every batch the follower committed, with
its counter deltas, for serve to feed the engine. Without one (tests), each job builds
its own engine from the store.

Each job has its own store connection, so a slow or locked store slows ingestion, never
a routing reply (the agent answers from its in-memory snapshot). A job that cannot
start (store unreachable, address in use) is logged and counted in ``failures`` and
tried again every ``retry_interval`` seconds; an ingestion round that fails is logged
and counted by ``Ingestd`` itself, which goes on from the stored checkpoint. Routing
never waits for any of it. ``stop()`` (SIGTERM) lets the follower finish its round,
which commits the events and the read position in one transaction, then closes the
listener after the messages in progress are stored.

The follower shares the process (and its GIL) with the routing agent; its batches are
stored by a child process (``services.ingest.store_worker``, for a SQLite file). Live, it costs
little; catching up a backlog it would take the CPU for seconds, so it is paced: the
GIL is handed back every ``SWITCH_INTERVAL`` and, after each chunk read, the follower
sleeps three times as long as it and its store worker computed (CPU time:
``CATCH_UP_SHARE``, a quarter of the time busy, ~90,000 lines/s here); live, with a few
lines per poll, that is no pause at all. ``bench/bench_serve_ingest.py`` measures routing
latency idle, live and catching up.

Settings under ``[ingest]`` and ``[feedback]`` are read at start: SIGHUP does not restart
these jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import PoolwardenError
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, Store
from poolwarden.services.domains.dmarc_ingest import dmarc_mailbox
from poolwarden.services.feedback.intake import FeedbackService
from poolwarden.services.feedback.lmtpd import LmtpServer, parse_listen
from poolwarden.services.feedback.settings import feedback_settings
from poolwarden.services.ingest.ingestd import BATCH_LINES, Ingestd
from poolwarden.services.ingest.pipeline import IngestMetrics
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.reputation.reaction import ReactionService

__all__ = ["IngestJobs", "IngestOptions", "log_paths"]

log = logging.getLogger("poolwarden.serve.ingest")

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits
# of wall time the follower (parser and store worker together) may work while catching
# up: at a half, routing's p99 was 4x idle's; at a quarter 2.4x, still ~90,000 lines/s
CATCH_UP_SHARE = 0.25
MAX_PAUSE = 0.2  # seconds: one pause at most (a stalled store is not work to pace)


class Stopping(BaseException):  # not an Exception: nothing may catch it on the way out
    """Raised by the pacer inside a read when serve stops: ``Ingestd.run_once`` reads a
    whole backlog before it returns, which must not hold up SIGTERM for minutes. What was
    committed stays (events and read position together); the rest is read next time."""


class Pacer:
    """``Ingestd`` hook: after each chunk read, sleep in proportion to the CPU time the
    calling thread used since its last chunk (``cpu``: serve adds its store worker's), so a
    catch-up computes at most ``share`` of the time (the sleep releases the GIL for the
    routing agent). CPU time, not wall time: waiting between polls is not work, and a live
    follower never pauses."""

    def __init__(self, share: float = CATCH_UP_SHARE,
                 cpu: Callable[[], float] = time.thread_time,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.factor = (1.0 - share) / share
        self._stopping = stopping
        self._cpu = cpu
        self._sleep = sleep
        self._last: dict[int, float] = {}  # per thread: polls may run on different ones
        self.paused = 0.0  # seconds slept in total

    def __call__(self, point: str) -> None:
        if point != "read":
            return
        if self._stopping():
            raise Stopping
        thread = threading.get_ident()
        now = self._cpu()
        last = self._last.get(thread)
        if last is not None:
            pause = min((now - last) * self.factor, MAX_PAUSE)
            if pause >= 0.001:
                self._sleep(pause)
                self.paused += pause
        self._last[thread] = now


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Command-line overrides of ``[ingest]``: None keeps the configured value."""

    logs: tuple[str, ...] | None = None
    lmtp_listen: str | None = None  # given: the listener runs there, whatever ``lmtp`` says
    # a followed log that does not exist yet is waited for (warned about, alerted on)
    # instead of refused at start
    wait_for_log: bool = False


def log_paths(config: LoadedConfig, logs: Sequence[str]) -> list[Path]:
    """The followed files, relative ones against the configuration file's directory."""
    base = config.path.absolute().parent
    return [p if p.is_absolute() else base / p for p in map(Path, logs)]


def missing_logs(paths: Sequence[Path]) -> list[Path]:
    """The followed files that do not exist (a typo follows nothing, silently)."""
    return [p for p in paths if not p.exists()]


class IngestJobs:
    """The follower and the LMTP listener of one serve process; ``start`` then ``stop``."""

    def __init__(self, config: LoadedConfig, *, options: IngestOptions | None = None,
                 snapshot: Callable[[], Snapshot | None] = lambda: None,
                 clock: Callable[[], float] = time.time,
                 engine: Engine | None = None) -> None:
        options = options or IngestOptions()
        settings = config.settings.ingest
        self.config = config
        self.paths = log_paths(config, options.logs if options.logs is not None
                               else settings.logs)
        self.lmtp_listen = options.lmtp_listen or (config.settings.feedback.lmtp_listen
                                                   if settings.lmtp else None)
        self.wait_for_log = options.wait_for_log
        self.missing: list[Path] = []  # followed files not there yet (read by the alerter)
        self.poll_interval = settings.poll_interval
        self.retry_interval = settings.retry_interval
        self.batch_lines = BATCH_LINES  # lines per transaction in a catch-up
        self._snapshot = snapshot
        self._clock = clock
        self._engine = engine
        # told each committed batch's result (its deltas, the metrics' events by kind); set
        # by serve
        self.on_added: Callable[[AddResult], None] | None = None
        self.failures: Counter[str] = Counter()  # job -> starts that failed
        self.ingestd: Ingestd | None = None
        self.reactions: ReactionService | None = None  # the follower's reaction rules
        self.lmtp: LmtpServer | None = None
        self.feedback: FeedbackService | None = None
        self._stop = asyncio.Event()
        self.pacer = Pacer(stopping=self._stop.is_set, cpu=self._ingest_cpu)
        self._tasks: list[asyncio.Task[None]] = []

    def metrics(self) -> IngestMetrics | None:
        """The follower's counters, once it runs."""
        return self.ingestd.metrics if self.ingestd is not None else None

    def _ingest_cpu(self) -> float:
        """The follower's CPU time: the calling thread's plus its store worker's (a child
        process: its batches are work the pacing must make room for too)."""
        ingestd = self.ingestd
        return time.thread_time() + (ingestd.worker_cpu_seconds() if ingestd else 0.0)

    @property
    def enabled(self) -> bool:
        return bool(self.paths) or self.lmtp_listen is not None

    async def start(self) -> None:
        """Start the configured jobs in the background (returns at once)."""
        if self.paths:
            # a catch-up parses on its thread for seconds: hand the GIL back to the event
            # loop ten times sooner than Python's 5 ms, or every routing reply waits ~5 ms
            # (bench/bench_serve_ingest.py measures both)
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
            self._tasks.append(asyncio.create_task(self._follow(), name="ingest-follow"))
            self._tasks.append(asyncio.create_task(self._watch_missing(),
                                                   name="ingest-missing"))
        if self.lmtp_listen is not None:
            self._tasks.append(asyncio.create_task(self._listen(self.lmtp_listen),
                                                   name="ingest-lmtp"))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.enabled:
            log.info("ingest stopped: %s", self.stats())

    def stats(self) -> dict[str, Any]:
        """Counters for logs and metrics: what was read, stored, refused and failed."""
        out: dict[str, Any] = {f"start_failures_{k}": v for k, v in self.failures.items()}
        if self.paths:
            out["catch_up_paused_seconds"] = round(self.pacer.paused, 1)
        if self.ingestd is not None:
            m = self.ingestd.metrics
            out.update(lines_read=m.lines_read, events_stored=m.events_stored,
                       duplicates=m.duplicates, unknown_tenants=m.unknown_tenants,
                       gaps=m.gaps, ingest_errors=m.errors, lag_bytes=m.lag_bytes)
        if self.feedback is not None:
            out.update({f"feedback_{k}": v for k, v in sorted(self.feedback.counts.items())})
        if self.lmtp is not None:
            out.update({f"lmtp_replies_{k}": v for k, v in sorted(self.lmtp.replies.items())})
        return out

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.retry_interval)

    def _failed(self, job: str, exc: BaseException) -> None:
        self.failures[job] += 1
        log.error("%s could not start (attempt %d), routing goes on; next try in %.0f s: %s",
                  job, self.failures[job], self.retry_interval, exc)

    # -- the log follower ---------------------------------------------------------------

    def _open_follower(self) -> tuple[Store, Ingestd]:
        store = open_store(self.config.store_url)
        try:
            return store, Ingestd(self.config, store, self.paths,
                                  poll_interval=self.poll_interval, clock=self._clock,
                                  batch_lines=self.batch_lines,
                                  current_snapshot=self._snapshot, pipelined=True,
                                  store_process=True,
                                  hook=self.pacer,
                                  # reaction rules read each committed batch's replies
                                  on_batch=self._reactions(store).on_batch,
                                  on_added=self.on_added)
        except BaseException:
            store.close()
            raise

    def _reactions(self, store: Store) -> ReactionService:
        self.reactions = ReactionService(self.config, store, clock=self._clock)
        return self.reactions

    async def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                store, ingestd = await asyncio.to_thread(self._open_follower)
            except (PoolwardenError, OSError) as exc:
                self._failed("log follower", exc)
                await self._pause()
                continue
            self.ingestd = ingestd
            log.info("following %s", ", ".join(map(str, self.paths)))
            try:
                await ingestd.run(self._stop)  # until stop; its own errors are counted there
            except Stopping:  # SIGTERM during a catch-up: the last commit is the checkpoint
                log.info("log follower stopped in a catch-up; it resumes from the checkpoint")
            except Exception as exc:  # a bug: start afresh from the checkpoints
                self._failed("log follower", exc)
                await self._pause()
            finally:
                await asyncio.to_thread(store.close)

    async def _watch_missing(self) -> None:
        """Warn (once a minute) while a followed file is missing; say when it appears."""
        warned_at = float("-inf")
        while not self._stop.is_set():
            missing = missing_logs(self.paths)
            for path in set(self.missing) - set(missing):
                log.info("followed log %s exists now", path)
            self.missing = missing
            now = time.monotonic()
            if missing and now - warned_at >= 60:
                warned_at = now
                log.warning("waiting for followed log(s) that do not exist: %s; no outcome "
                            "is ingested from them, reputation runs without their data",
                            ", ".join(map(str, missing)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_interval)

    # -- the feedback listener -----------------------------------------------------------

    def _open_feedback(self) -> tuple[Store, FeedbackService]:
        store = open_store(self.config.store_url)
        try:
            engine = (self._engine.bound_to(store) if self._engine is not None
                      else Engine(self.config, store, now=self._clock()))
            return store, FeedbackService(engine, feedback_settings(self.config),
                                          clock=self._clock)
        except BaseException:
            store.close()
            raise

    async def _listen(self, listen: str) -> None:
        try:
            where = parse_listen(listen)
        except ValueError as exc:  # a configuration problem: retrying cannot help
            self._failed("feedback LMTP listener", exc)
            return
        while not self._stop.is_set():
            store: Store | None = None
            server: LmtpServer | None = None
            try:
                opened, service = await asyncio.to_thread(self._open_feedback)
                store = opened
                server = LmtpServer(service,
                                    max_message_bytes=service.settings.max_message_bytes,
                                    reports=dmarc_mailbox(opened, self.config,
                                                          clock=self._clock))
                await server.start([where])
            except (PoolwardenError, OSError) as exc:
                if server is not None:
                    await server.stop()
                if store is not None:
                    await asyncio.to_thread(store.close)
                self._failed("feedback LMTP listener", exc)
                await self._pause()
                continue
            assert store is not None
            self.feedback, self.lmtp = service, server
            try:
                await self._stop.wait()
            finally:
                await server.stop()  # waits for the message being stored
                await asyncio.to_thread(store.close)
