"""monitord's numbers on /metrics: listed targets by list, check errors by list, lookups
and their latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from poolwarden.services.monitors.monitord import MonitorStats
from poolwarden.services.queries.metrics import MetricSources, NodeCollector


def test_monitor_metrics():
    stats = MonitorStats(rounds=2, lookups=5250, errors={"spamhaus-zen": 3},
                         listed={"spamcop": 1, "spamhaus-zen": 2}, mx_lookups=40, mx_errors=1)
    stats.latency.observe_all([0.002, 0.004, 0.3])
    registry = CollectorRegistry()
    registry.register(NodeCollector(MetricSources(monitors=lambda: stats)))
    text = generate_latest(registry).decode()
    assert 'poolwarden_blocklist_listed{list="spamhaus-zen"} 2.0' in text
    assert 'poolwarden_blocklist_check_errors_total{list="spamhaus-zen"} 3.0' in text
    assert "poolwarden_blocklist_lookups_total 5250.0" in text
    assert "poolwarden_mx_lookup_errors_total 1.0" in text
    assert 'poolwarden_dns_lookup_latency_seconds_bucket{le="0.005"} 2.0' in text
    assert "poolwarden_dns_lookup_latency_seconds_count 3.0" in text
