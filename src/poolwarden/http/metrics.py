"""``GET /metrics``: the node's Prometheus metrics, mounted by ``http.app.create_app``.

Each app gets its own ``CollectorRegistry`` (kept in ``ctx.extras``), built over the
``NodeContext``: inside ``poolwarden serve`` the running agent's counters and latency
histogram, its snapshot, the log ingester's counters and the alerter's; standalone
(no runtime) the snapshot built from the store. Inside serve the scrape reads only
memory and runs on the event loop, the thread that also writes those counters, so
reads need no lock; the held-mail counts need the store (and ``postqueue``), so they
are refreshed on a worker thread at most every ``HELD_TTL`` seconds. Standalone, the
whole scrape runs on a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from poolwarden.core.errors import PoolwardenError
from poolwarden.http.context import get_ctx
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.queries.metrics import (
    AgentCounts,
    AlertCounts,
    ConnectionCounts,
    EventCounter,
    IngestCounts,
    LatencyHistogram,
    MetricSources,
    MonitorCounts,
    NodeCollector,
    node_registry,
)

log = logging.getLogger("poolwarden.http")
router = APIRouter()
HELD_TTL = 15.0  # seconds a held-mail count is reused (it costs a store scan)
_REGISTRY_KEY = "metrics_registry"


class HeldCache:
    """Held messages per tenant, recounted at most every ``HELD_TTL`` seconds."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.counts: dict[str, int] | None = None
        self.at = float("-inf")
        self._lock = threading.Lock()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.at >= HELD_TTL

    def refresh(self) -> None:
        """Count on the calling (worker) thread: the decision log and ``postqueue -j``."""
        from poolwarden.services.queries.held import node_held_rows

        with self._lock:
            if not self.stale:
                return
            counts = {}
            try:
                rows = node_held_rows(self.ctx, None)
            except PoolwardenError as exc:  # keep the last counts; the scrape goes on
                log.error("metrics: held mail not counted: %s", exc)
                self.at = time.monotonic()
                return
            for row in rows:
                # the hold queue when Postfix can be asked, else the HOLD decisions logged
                in_queue = row.get("in_queue")
                counts[row["tenant"]] = int(in_queue if in_queue is not None
                                            else row["held_decisions"])
            self.counts, self.at = counts, time.monotonic()


def sources_for(ctx: NodeContext, held: HeldCache) -> MetricSources:
    runtime = ctx.runtime

    def agent() -> AgentCounts | None:
        return runtime.agent.stats if runtime is not None else None

    def latency() -> LatencyHistogram | None:
        return runtime.server.latency if runtime is not None else None

    def ingest() -> IngestCounts | None:
        jobs = getattr(runtime, "ingest", None)
        ingestd = getattr(jobs, "ingestd", None)
        metrics: IngestCounts | None = getattr(ingestd, "metrics", None)
        return metrics

    def events() -> EventCounter | None:
        counter: EventCounter | None = getattr(runtime, "event_counter", None)
        return counter

    def alerts() -> AlertCounts | None:
        alerter = getattr(runtime, "alerter", None)
        stats: AlertCounts | None = getattr(alerter, "stats", None)
        return stats

    def monitors() -> MonitorCounts | None:
        monitord = getattr(runtime, "monitord", None)
        stats: MonitorCounts | None = getattr(monitord, "stats", None)
        return stats

    def snapshot() -> Any:
        if runtime is not None:
            return runtime.snapshot  # None before the first build: no snapshot metrics
        return ctx.snapshot()

    def held_counts() -> Mapping[str, int] | None:
        return held.counts

    lag = getattr(runtime, "ingest_lag", None)
    def connections() -> ConnectionCounts | None:
        server: ConnectionCounts | None = getattr(runtime, "server", None)
        return server

    sources = MetricSources(clock=ctx.clock, snapshot=snapshot, agent=agent, latency=latency,
                            ingest=ingest, events=events, held=held_counts, alerts=alerts,
                            connections=connections, monitors=monitors)
    if lag is not None:
        sources.ingest_lag = lag  # shared with the alerter: one notion of "behind since"
    return sources


def registry_for(ctx: NodeContext) -> tuple[CollectorRegistry, HeldCache, NodeCollector]:
    found = ctx.extras.get(_REGISTRY_KEY)
    if found is None:
        held = HeldCache(ctx)
        registry, collector = node_registry(sources_for(ctx, held))
        found = ctx.extras[_REGISTRY_KEY] = (registry, held, collector)
    registry, held, collector = found
    return registry, held, collector


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ctx = get_ctx(request)
    registry, held, collector = registry_for(ctx)
    if held.stale:
        await run_in_threadpool(held.refresh)
    if ctx.runtime is None:  # a standalone snapshot comes from the store: not on the loop
        body = await run_in_threadpool(generate_latest, registry)
    else:
        await run_in_threadpool(collector.prime)  # tiers of a new snapshot: off the loop
        body = generate_latest(registry)  # the rest reads counters the loop writes
    # the classic text format (what generate_latest writes with its default escaping),
    # which every Prometheus version reads
    return Response(content=body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
