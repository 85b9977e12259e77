"""Prometheus metrics of one node, read at scrape time from where the numbers already live.

Nothing here is copied on every change: the routing agent already counts its
actions and errors (``AgentStats``), the ingester its lines and lag
(``IngestMetrics``), the snapshot knows its version, age and tiers, and the
alerter its deliveries. ``NodeCollector`` reads them when Prometheus scrapes,
into a per-app ``CollectorRegistry`` (never the global one, so tests and two
apps in one process stay apart). Two things are counted here because nobody
else does: decision latency (``LatencyHistogram``, observed by the policy
server on the hot path: an append to a list, folded into buckets in batches)
and events stored by kind (``EventCounter``, fed after each committed batch).
Never touches the store or the network; reading is cheap enough for the event loop
(tier counts are computed once per snapshot, not once per scrape).
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import Tier
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AddResult

# Seconds; a decision takes ~2-20 µs, so the buckets start far below Prometheus's defaults.
LATENCY_BUCKETS = (0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                   0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FOLD_EVERY = 2048  # observations buffered before they are folded into buckets
# agent error causes that are an answer from the configuration, not a lack of decision
NOT_A_LACK_OF_DECISION = frozenset({"unknown tenant"})


class LatencyHistogram:
    """Decision latency, observed on the routing hot path for the cost of a list append.

    ``observe`` buffers; every ``FOLD_EVERY`` observations (and at each read) the
    buffer is folded into cumulative-ready bucket counts. Observed and read on the
    event loop's thread only, so no lock is needed (a lock would cost more than
    the append).
    """

    __slots__ = ("_counts", "_pending", "_sum", "buckets")

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._pending: list[float] = []
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def observe_many(self, seconds: float, n: int) -> None:
        """``n`` requests answered together in ``seconds`` (pipelined): each gets the mean."""
        each = seconds / n
        for _ in range(n):
            self.observe(each)

    def observe_all(self, values: list[float]) -> None:
        """Many observations at once (a monitor round's lookups): one sort."""
        self._pending.extend(values)
        self.fold()

    def fold(self) -> None:
        pending, self._pending = self._pending, []
        # sorted once (C speed), each bucket bound is one bisection: ~10x cheaper than
        # placing every value on its own
        pending.sort()
        counts, below = self._counts, 0
        for i, bound in enumerate(self.buckets):
            upto = bisect_right(pending, bound)  # bucket ``le`` holds values <= le
            counts[i] += upto - below
            below = upto
        counts[-1] += len(pending) - below
        self._sum += sum(pending)

    def read(self) -> tuple[list[tuple[str, float]], float, int]:
        """(cumulative buckets as Prometheus wants them, sum, count), after a fold."""
        self.fold()
        cumulative, total = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self._counts, strict=True):
            total += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return cumulative, self._sum, total


@dataclass(slots=True)
class EventCounter:
    """Events newly stored, by kind; fed with each committed batch (``on_added``)."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, events: Iterable[Event]) -> None:
        by_kind = self.by_kind
        for event in events:
            by_kind[event.kind.value] = by_kind.get(event.kind.value, 0) + 1

    def on_added(self, result: AddResult) -> None:
        self.count(result.added_events)


class AgentCounts(Protocol):
    """What the routing agent counts (``policy_agent.AgentStats``)."""

    by_action: dict[str, int]
    errors: dict[str, int]
    bad_requests: int


class ConnectionCounts(Protocol):
    """What the policy server counts about its connections (``policyd.PolicyServer``)."""

    shed: dict[str, int]
    idle_closed: int
    max_connections: int

    @property
    def connection_count(self) -> int: ...


class IngestCounts(Protocol):
    """What the log ingester counts (``ingest_pipeline.IngestMetrics``)."""

    lines_read: int
    bytes_read: int
    events_stored: int
    duplicates: int
    unknown_tenants: int
    gaps: int
    gap_bytes: int
    gap_lines: int
    errors: int
    lag_bytes: int


class AlertCounts(Protocol):
    """What the alerter counts: deliveries by (kind, channel, outcome)."""

    @property
    def outcomes(self) -> Mapping[tuple[str, str, str], int]: ...


class MonitorCounts(Protocol):
    """What monitord counts (``monitors.monitord.MonitorStats``)."""

    rounds: int
    lookups: int
    errors: dict[str, int]
    listed: dict[str, int]
    mx_lookups: int
    mx_errors: int
    latency: LatencyHistogram


class IngestLag:
    """How long the ingester has been behind: seconds since it last had nothing left to
    read. Precise to the interval at which it is read (each scrape and alert poll)."""

    __slots__ = ("_caught_up_at",)

    def __init__(self) -> None:
        self._caught_up_at: float | None = None

    def seconds(self, lag_bytes: int, now: float) -> float:
        if lag_bytes <= 0 or self._caught_up_at is None:
            self._caught_up_at = now
        return 0.0 if lag_bytes <= 0 else max(0.0, now - self._caught_up_at)


def _none() -> None:
    return None


@dataclass(slots=True)
class MetricSources:
    """Where each number is read; every source may be absent (a standalone web app has
    no agent, a node without log paths no ingester)."""

    clock: Callable[[], float] = time.time
    snapshot: Callable[[], Snapshot | None] = _none
    agent: Callable[[], AgentCounts | None] = _none
    latency: Callable[[], LatencyHistogram | None] = _none
    connections: Callable[[], ConnectionCounts | None] = _none
    ingest: Callable[[], IngestCounts | None] = _none
    ingest_lag: IngestLag = field(default_factory=IngestLag)
    events: Callable[[], EventCounter | None] = _none
    held: Callable[[], Mapping[str, int] | None] = _none  # held messages per tenant
    alerts: Callable[[], AlertCounts | None] = _none
    monitors: Callable[[], MonitorCounts | None] = _none


def lack_of_decision(errors: Mapping[str, int]) -> int:
    """Defers the agent answered because it could not decide (no snapshot, a bad request,
    an internal error), as opposed to answers the configuration asks for."""
    return sum(n for cause, n in errors.items() if cause not in NOT_A_LACK_OF_DECISION)


class NodeCollector(Collector):
    """Builds every poolwarden metric from ``MetricSources`` at each scrape."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self._tiers: tuple[int, dict[str, int]] | None = None  # (id of snapshot, counts)

    def describe(self) -> list[Metric]:
        return []  # unchecked registration: the set of metrics depends on what is present

    def collect(self) -> Iterator[Metric]:
        yield from self._agent()
        yield from self._snapshot()
        yield from self._ingest()
        yield from self._held()
        yield from self._alerts()
        yield from self._monitors()

    def _monitors(self) -> Iterator[Metric]:
        stats = self.sources.monitors()
        if stats is None:
            return
        listed = GaugeMetricFamily("poolwarden_blocklist_listed", "Egress IPs and tenant "
                                   "domains a DNS blocklist lists now, by list.",
                                   labels=["list"])
        for name, n in sorted(stats.listed.items()):
            listed.add_metric([name], n)
        yield listed
        errors = CounterMetricFamily("poolwarden_blocklist_check_errors", "Blocklist checks "
                                     "whose answer was unknown (error code, timeout, "
                                     "SERVFAIL), by list.", labels=["list"])
        for name, n in sorted(stats.errors.items()):
            errors.add_metric([name], n)
        yield errors
        yield CounterMetricFamily("poolwarden_blocklist_rounds", "Blocklist rounds run.",
                                  value=stats.rounds)
        yield CounterMetricFamily("poolwarden_blocklist_lookups", "DNS queries made by "
                                  "blocklist rounds.", value=stats.lookups)
        yield CounterMetricFamily("poolwarden_mx_lookups", "MX lookups of recipient domains.",
                                  value=stats.mx_lookups)
        yield CounterMetricFamily("poolwarden_mx_lookup_errors", "MX lookups that failed "
                                  "(timeout, SERVFAIL).", value=stats.mx_errors)
        buckets, total, _count = stats.latency.read()
        yield HistogramMetricFamily("poolwarden_dns_lookup_latency_seconds", "Time one DNS "
                                    "lookup of the monitors took.", buckets=buckets,
                                    sum_value=total)

    def _agent(self) -> Iterator[Metric]:
        stats = self.sources.agent()
        if stats is not None:
            decisions = CounterMetricFamily(
                "poolwarden_decisions", "Policy answers of the routing agent, by action "
                "(FILTER, HOLD, REJECT, DEFER_IF_PERMIT, 451, DUNNO).", labels=["action"])
            for action, n in sorted(stats.by_action.items()):
                decisions.add_metric([action], n)
            yield decisions
            errors = CounterMetricFamily(
                "poolwarden_agent_errors", "Requests the agent answered with a safe 451 "
                "defer (or its unknown-tenant answer), by cause.", labels=["cause"])
            for cause, n in sorted(stats.errors.items()):
                errors.add_metric([cause], n)
            yield errors
            yield CounterMetricFamily(
                "poolwarden_agent_defers_no_decision", "Requests deferred because the agent "
                "could not decide (no snapshot, bad request, internal error).",
                value=lack_of_decision(stats.errors))
            yield CounterMetricFamily(
                "poolwarden_agent_bad_requests", "Malformed policy requests.",
                value=stats.bad_requests)
        yield from self._connections()
        latency = self.sources.latency()
        if latency is not None:
            buckets, total, _count = latency.read()
            yield HistogramMetricFamily(
                "poolwarden_decision_latency_seconds", "Time the agent took to answer one "
                "policy request, from parsed request to action text.", buckets=buckets,
                sum_value=total)

    def _connections(self) -> Iterator[Metric]:
        server = self.sources.connections()
        if server is None:
            return
        shed = CounterMetricFamily(
            "poolwarden_policy_connections_refused", "Policy connections refused or shed, by "
            "reason: peer_limit and connection_limit (the least recently active connection "
            "closed to admit a new one), not_loopback, stopping.", labels=["reason"])
        for reason, n in sorted(dict(server.shed).items()):
            shed.add_metric([reason], n)
        yield shed
        yield CounterMetricFamily(
            "poolwarden_policy_connections_idle_closed", "Policy connections closed after "
            "policyd.idle_timeout without a request.", value=server.idle_closed)
        yield GaugeMetricFamily("poolwarden_policy_connections_open", "Open policy "
                                "connections.", value=server.connection_count)
        yield GaugeMetricFamily("poolwarden_policy_connections_limit", "policyd."
                                "max_connections.", value=server.max_connections)

    def _snapshot(self) -> Iterator[Metric]:
        snapshot = self.sources.snapshot()
        if snapshot is None:
            return
        now = self.sources.clock()
        yield GaugeMetricFamily("poolwarden_snapshot_version", "Version of the routing "
                                "snapshot in force.", value=snapshot.version)
        yield GaugeMetricFamily("poolwarden_snapshot_age_seconds", "Seconds since the "
                                "routing snapshot in force was built.",
                                value=max(0.0, now - snapshot.built_at))
        tiers = GaugeMetricFamily("poolwarden_tenants", "Tenants per tier in the routing "
                                  "snapshot.", labels=["tier"])
        for tier, n in self._tier_counts(snapshot).items():
            tiers.add_metric([tier], n)
        yield tiers

    def prime(self) -> None:
        """Count the tiers of a new snapshot now (call it on a worker thread: 100,000
        tenants take milliseconds that the event loop should not spend)."""
        snapshot = self.sources.snapshot()
        if snapshot is not None:
            self._tier_counts(snapshot)

    def _tier_counts(self, snapshot: Snapshot) -> dict[str, int]:
        cached = self._tiers
        if cached is not None and cached[0] == id(snapshot):
            return cached[1]
        counts = {tier.value: 0 for tier in Tier}
        for entry in snapshot.tenants.values():
            counts[entry.tier.value] += 1
        self._tiers = (id(snapshot), counts)  # the snapshot is immutable: count it once
        return counts

    def _ingest(self) -> Iterator[Metric]:
        events = self.sources.events()
        if events is not None:
            family = CounterMetricFamily("poolwarden_events_ingested", "Outcome events "
                                         "newly stored, by kind.", labels=["kind"])
            for kind in EventKind:
                family.add_metric([kind.value], events.by_kind.get(kind.value, 0))
            yield family
        ingest = self.sources.ingest()
        if ingest is None:
            return
        for name, help_text in (
                ("lines_read", "Postfix log lines read."),
                ("bytes_read", "Postfix log bytes read."),
                ("events_stored", "Events the log ingester stored (duplicates excluded)."),
                ("duplicates", "Events read again whose key was already stored."),
                ("unknown_tenants", "Deliveries of no known tenant (not stored)."),
                ("gaps", "Unreadable byte ranges of the followed logs (rotation races, "
                 "truncation)."),
                ("gap_bytes", "Log bytes known to be lost."),
                ("errors", "Ingestion errors (the ingester resumed from its checkpoint).")):
            yield CounterMetricFamily(f"poolwarden_ingest_{name}", help_text,
                                      value=getattr(ingest, name))
        yield GaugeMetricFamily("poolwarden_ingest_lag_bytes", "Log bytes written by Postfix "
                                "but not yet read.", value=ingest.lag_bytes)
        seconds = self.sources.ingest_lag.seconds(ingest.lag_bytes, self.sources.clock())
        yield GaugeMetricFamily("poolwarden_ingest_lag_seconds", "Seconds since the ingester "
                                "last had nothing left to read (0 when caught up).",
                                value=seconds)

    def _held(self) -> Iterator[Metric]:
        held = self.sources.held()
        if held is None:
            return
        family = GaugeMetricFamily("poolwarden_held_messages", "Messages on hold (suspended "
                                   "tenants), by tenant.", labels=["tenant"])
        for tenant, n in sorted(held.items()):
            family.add_metric([tenant], n)
        yield family

    def _alerts(self) -> Iterator[Metric]:
        alerts = self.sources.alerts()
        if alerts is None:
            return
        family = CounterMetricFamily("poolwarden_alerts", "Alerts by kind, channel and "
                                     "outcome (sent, failed, suppressed by the rate limit).",
                                     labels=["kind", "channel", "outcome"])
        for (kind, channel, outcome), n in sorted(alerts.outcomes.items()):
            family.add_metric([kind, channel, outcome], n)
        yield family


def node_registry(sources: MetricSources) -> tuple[CollectorRegistry, NodeCollector]:
    """A registry of its own (not prometheus_client's global one) holding the node's
    collector; the platform and process collectors are left out (one process may hold
    several apps in tests, and Prometheus's own exporters cover the host)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = NodeCollector(sources)
    registry.register(collector)
    return registry, collector
