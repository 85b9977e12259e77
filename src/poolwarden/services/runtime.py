"""One node's services in one process: the routing agent plus its background jobs.

Owns the one reputation ``Engine`` of the process (its ledger loaded once, then fed the
counter deltas of every batch the log follower, the feedback listener and the
imports store; reconciled with the store every ``reconcile_interval``) and the current
routing snapshot the engine builds (swapped atomically, one reference assignment),
rebuilt when the store's change marker moves (a tier move or override) and on a
refresh interval. Flushes the decision log in batches, evaluates tiers and warm-up
with the engine on an interval, reloads the configuration
on SIGHUP (keeping the running one when the new file is bad) and stops
gracefully on SIGTERM. When configured, it also follows the Postfix logs and runs
the feedback LMTP listener (``services.ingest.jobs``, their own threads and store
connections). Store work runs on one worker thread, never on the
event loop, so a slow store costs freshness, never routing latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import resource
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from poolwarden.adapters.listeners import Listen
from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import LoadedConfig, load_config
from poolwarden.core.errors import PoolwardenError
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult, DecisionRow, ListingChange, Store
from poolwarden.services.access import audit
from poolwarden.services.alerts.watcher import Alerter
from poolwarden.services.ingest.jobs import IngestJobs, IngestOptions
from poolwarden.services.monitors.monitord import Monitord
from poolwarden.services.monitors.requeue import QueuedMailMover
from poolwarden.services.queries.metrics import EventCounter, IngestLag
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.reputation.warmup import counter_for, flush_counts
from poolwarden.services.routing.policy_agent import PolicyAgent
from poolwarden.services.routing.policyd import PolicyServer

log = logging.getLogger("poolwarden.serve")

T = TypeVar("T")


class Runtime:
    def __init__(self, config_path: Path, *, listens: list[Listen] | None = None,
                 clock: Callable[[], float] = time.time,
                 ingest: IngestOptions | None = None) -> None:
        self.config_path = config_path
        self.config: LoadedConfig = load_config(config_path)
        settings = self.config.settings.policyd
        self.listens = listens or [Listen.parse(text) for text in settings.listen]
        self.node = settings.node or socket.gethostname()
        self.clock = clock
        self.store: Store = open_store(self.config.store_url)
        self.snapshot: Snapshot | None = None
        self.agent = PolicyAgent(lambda: self.snapshot, clock)
        self.server = PolicyServer(self.agent, request_timeout=settings.request_timeout,
                                   max_connections=settings.max_connections,
                                   max_connections_per_peer=settings.max_connections_per_peer,
                                   idle_timeout=settings.idle_timeout,
                                   allow_remote=settings.allow_remote)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._marker = -1
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # loaded from the store by the first rebuild, on the store thread
        self.engine = Engine(self.config, self.store, now=None)
        self.ingest = IngestJobs(self.config, options=ingest, snapshot=lambda: self.snapshot,
                                 clock=clock, engine=self.engine)
        # alerts and metrics: both read the counters the agent and the ingester keep; the
        # alert loop polls them and the store (on the store thread)
        self.event_counter = EventCounter()
        self.ingest.on_added = self._on_added
        self.ingest_lag = IngestLag()
        self.alerter = Alerter(lambda: self.config, self.store,
                               clock=clock, agent=lambda: self.agent.stats,
                               ingest=self.ingest.metrics, ingest_lag=self.ingest_lag,
                               connections=lambda: self.server,
                               missing_logs=lambda: self.ingest.missing,
                               engine=lambda _config, _now: self.engine,
                               warmup=self.store.warmup_states)
        # DNS monitors: blocklist listings rebuild the snapshot, the MX rollup is swapped
        # into the current one (cheap: only the provider index changes)
        self.monitord = Monitord(lambda: self.config, self.store, clock=clock,
                                 run_store=self._in_store_thread,
                                 on_listing=self._on_listing, on_mx=self._publish_mx)
        self.mover = QueuedMailMover(lambda: self.config, lambda: self.snapshot, clock)

    def _on_added(self, result: AddResult) -> None:
        """Each batch the log follower committed (on its writer thread)."""
        self.engine.feed(result.deltas)
        self.event_counter.on_added(result)

    async def _in_store_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- snapshot -------------------------------------------------------------

    def _build(self, learned: dict[str, str]) -> tuple[int, Snapshot]:
        marker = self.store.change_marker()
        if not self.engine.loaded:
            self.engine.reconcile(self.clock())
        return marker, self.engine.snapshot(self.clock(), learned=learned)

    async def rebuild(self, reason: str) -> None:
        started = time.perf_counter()
        learned = self.monitord.mx.learned()  # read on the loop, which owns the cache
        marker, snapshot = await self._in_store_thread(lambda: self._build(learned))
        self.snapshot = snapshot  # the atomic swap: requests see the old or the new, whole
        self._marker = marker
        # the snapshot is long-lived and acyclic: keep it out of the cyclic GC's full
        # passes, which otherwise walk 100k tenants and stall routing for ~100 ms
        gc.freeze()
        log.info("snapshot v%d (%s): %d tenants, built in %.0f ms", snapshot.version, reason,
                 len(snapshot.tenants), (time.perf_counter() - started) * 1000)

    async def _watch_store(self) -> None:
        settings = self.config.settings.policyd
        last_refresh = time.monotonic()
        while not self._stop.is_set():
            await self._sleep(settings.reload_interval)
            try:
                marker = await self._in_store_thread(self.store.change_marker)
                stale = time.monotonic() - last_refresh >= settings.refresh_interval
                if marker != self._marker or stale or self.snapshot is None:
                    await self.rebuild("store changed" if marker != self._marker
                                       else "refresh")
                    last_refresh = time.monotonic()
            except PoolwardenError as exc:  # keep serving the last snapshot
                log.error("cannot refresh the snapshot, still serving v%s: %s",
                          self.snapshot.version if self.snapshot else "-", exc)

    def _publish_mx(self) -> None:
        snapshot = self.snapshot
        if snapshot is not None:  # same routes, a provider index with the new MX map
            self.snapshot = replace(snapshot, providers=snapshot.providers.with_learned(
                self.monitord.mx.learned()))

    async def _on_listing(self, changes: list[ListingChange]) -> None:
        await self.rebuild(f"blocklist: {len(changes)} listing change(s)")

    def _take_domains(self) -> set[str]:
        seen, self.agent.recipient_domains = self.agent.recipient_domains, set()
        return seen

    # -- background jobs --------------------------------------------------------

    async def _flush_decisions(self) -> None:
        while not self._stop.is_set():
            await self._sleep(self.config.settings.policyd.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        agent = self.agent
        await self.flush_counts()
        rows = []
        while agent.decision_log:
            d = agent.decision_log.popleft()
            rows.append(DecisionRow(at=d.at, node=self.node, instance=d.instance,
                                    tenant=d.tenant, recipient=d.recipient, action=d.action,
                                    ip=d.ip, pool=d.pool, rule=d.rule,
                                    snapshot_version=d.snapshot_version))
        pairs = []
        while agent.bound:
            pairs.append(agent.bound.popleft())
        if not rows and not pairs:
            return
        try:
            await self._in_store_thread(lambda: self._write_log(rows, pairs))
        except PoolwardenError as exc:
            log.error("decision log: %d rows not stored: %s", len(rows), exc)

    async def flush_counts(self) -> None:
        """Write the agent's warm-up counts (batched) and take back every node's totals."""
        counts = self.agent.counts
        batches = counts.take_pending()
        store, today = self.store, counts.day
        try:
            totals = await self._in_store_thread(lambda: flush_counts(store, batches, today))
        except PoolwardenError as exc:
            for day, rows in batches:
                counts.restore_pending(day, rows)
            log.error("warm-up counts not stored, kept for the next flush: %s", exc)
            return
        counts.merge(today, totals)

    async def load_counts(self) -> None:
        """Today's stored counts, so a restart does not reset the daily caps."""
        try:
            self.agent.counts = await self._in_store_thread(
                lambda: counter_for(self.store, self.clock()))
        except PoolwardenError as exc:
            log.error("warm-up counts not loaded, today's caps count from zero: %s", exc)

    def _write_log(self, rows: list[DecisionRow], pairs: list[tuple[str, str]]) -> None:
        if rows:
            self.store.add_decisions(rows)
        if pairs:
            self.store.bind_queue_ids(self.node, pairs)

    async def _evaluate(self) -> None:
        while not self._stop.is_set():
            await self._sleep(self.config.settings.policyd.evaluate_interval)
            try:
                moves = await self._in_store_thread(lambda: self.engine.evaluate(self.clock()))
                for move in moves:
                    log.info("tier move %s: %s -> %s (%s)", move.tenant, move.before.value,
                             move.after.value, move.reason)
                if moves:  # each automatic move also gets its audit row (docs/testing.md S5)
                    await self._in_store_thread(functools.partial(
                        audit.record_moves, self.store, moves, at=self.clock()))
                notes = await self._in_store_thread(
                    lambda: self.engine.advance_warmup(self.clock()))
                for note in notes:
                    log.info("warm-up %s", note)
            except PoolwardenError as exc:
                log.error("tier evaluation failed: %s", exc)

    async def _reconcile(self) -> None:
        """Now and then, the stored counters replace the engine's: what other processes
        stored (CLI imports, other nodes) is counted too (see ``services.reputation.engine``)."""
        while not self._stop.is_set():
            interval = self.config.settings.policyd.reconcile_interval
            await self._sleep(interval or 60.0)
            if not interval:
                continue
            try:
                await self._in_store_thread(lambda: self.engine.reconcile(self.clock()))
            except PoolwardenError as exc:
                log.error("counters not reconciled with the store: %s", exc)

    async def reload_config(self) -> None:
        try:
            config = await self._in_store_thread(lambda: load_config(self.config_path))
        except PoolwardenError as exc:
            log.error("configuration not reloaded, the running one stays in force: %s", exc)
            return
        self.config = config
        await self._in_store_thread(lambda: self.engine.reload(config))
        if self.ingest.reactions is not None:  # new reaction rules for the log follower
            self.ingest.reactions.reload(config)
        await self.rebuild("configuration reloaded")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _alert_loop(self) -> None:
        while not self._stop.is_set():
            await self._sleep(self.config.settings.alerts.poll_interval)
            await self.alerter.poll(self._in_store_thread)  # never raises

    # -- lifecycle ----------------------------------------------------------------

    def describe_paths(self) -> str:
        """Every path serve uses, resolved (relative ones against the config's folder)."""
        config = self.config
        parts = [f"configuration {config.path.absolute()}", f"store {config.store_url}",
                 "policy " + ", ".join(
                     f"{w.kind}:{w.path}" if w.kind == "unix" else f"tcp:{w.host}:{w.port}"
                     for w in self.listens)]
        if self.ingest.paths:
            parts.append("following " + ", ".join(
                f"{p}{'' if p.exists() else ' (missing)'}" for p in self.ingest.paths)
                + f" (relative paths from {config.path.absolute().parent})")
        return "; ".join(parts)

    async def start(self) -> None:
        log.info("serving with %s", self.describe_paths())
        try:
            await self.rebuild("start")
        except PoolwardenError as exc:  # serve anyway: every request defers until a snapshot
            log.error("no snapshot at start, deferring all mail: %s", exc)
        await self.load_counts()
        raise_fd_limit(self.config.settings.policyd.max_connections)
        await self.server.start(self.listens)
        await self.ingest.start()
        self._tasks = [asyncio.create_task(job()) for job in
                       (self._watch_store, self._flush_decisions, self._evaluate,
                        self._reconcile)]
        if self.config.settings.alerts.enabled:
            self._tasks.append(asyncio.create_task(self._alert_loop()))
        if self.monitord.enabled:
            self._tasks.append(asyncio.create_task(
                self.monitord.run(self._stop, self._take_domains)))
        else:
            log.info("monitord: not running (monitors.nameservers is not set)")
        if self.mover.enabled():
            self._tasks.append(asyncio.create_task(self.mover.run(self._stop)))

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(self.reload_config()))

    async def run(self) -> None:
        await self.start()
        self.install_signals()
        await self._stop.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        self._stop.set()
        await self.server.stop()
        await self.ingest.stop()  # the follower commits its round (events + checkpoint)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.alerter.aclose()
        self.monitord.close()
        self.mover.close()
        await self.flush()
        self._executor.shutdown(wait=True)
        self.store.close()
        log.info("stopped")


# descriptors besides policy connections: store, logs followed, HTTP, LMTP, Postfix tools
FD_MARGIN = 512


def raise_fd_limit(max_connections: int) -> None:
    """Lift the soft descriptor limit to what ``max_connections`` needs (up to the hard
    limit). Past the soft limit accept() fails with EMFILE and asyncio stops accepting
    for a second: every Postfix connection in that second would get 451."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_MARGIN
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit to %d: %s", wanted, exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open-file limit %d is below policyd.max_connections + %d = %d: accept() "
                    "may fail before the connection limits apply; raise it (ulimit -n, "
                    "LimitNOFILE=)", soft, FD_MARGIN, wanted)
