"""``/metrics`` scraped through the app (httpx ASGI transport) over a real runtime.

The runtime's policy server answers real requests on a loopback socket; the log
ingester reads a generated Postfix log into SQLite. Every check compares a scraped
value with the input that drove it, before and after more input, so a collector
that returned constants, or read the wrong counter, fails. The text is parsed with
prometheus_client's own parser (no promtool needed).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from poolwarden.adapters.listeners import Listen
from poolwarden.core.model import Tier
from poolwarden.core.tiers import TierMove
from poolwarden.http.app import create_app
from poolwarden.http.metrics import registry_for
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.runtime import Runtime
from tests.reliability.support import Client, encode_request, rcpt_attrs
from tests.services.ingest.loggen import config_toml, generate

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser raises on malformed text."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(ctx: NodeContext) -> Samples:
    app = create_app(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def route(client: Client, n: int, *, sasl: str = "acme", first: int = 0) -> list[bytes]:
    replies = []
    for i in range(first, first + n):
        client.send(encode_request(rcpt_attrs(f"r{i}@gmail.com", sender=f"s@{sasl}.example",
                                              sasl_username=sasl, instance=f"i{i}")))
        replies.append(await client.reply())
    return replies


def test_scraped_values_follow_the_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config_path = tmp_path / "poolwarden.toml"
    log_path = tmp_path / "mail.log"
    config_path.write_text(config_toml(url) + f'\n[ingest]\nlogs = ["{log_path}"]\n'
                           'poll_interval = 0.05\n', encoding="utf-8")
    clock = [float(int(time.time()))]  # frozen, near the generated log's times
    runtime = Runtime(config_path, listens=[Listen.parse("tcp:127.0.0.1:0")],
                      clock=lambda: clock[0])
    ctx = NodeContext(loaded_config=runtime.config, store=runtime.store,  # type: ignore[arg-type]
                     clock=lambda: clock[0], runtime=runtime)

    async def main() -> None:
        await runtime.rebuild("test")
        await runtime.server.start(runtime.listens)
        client = await Client.tcp(runtime.server)

        # -- decisions, latency, snapshot, tiers ----------------------------------------
        replies = await route(client, 5)
        assert all(r.startswith(b"action=FILTER ") for r in replies), replies
        s = await scrape(ctx)
        assert value(s, "poolwarden_decisions_total", action="FILTER") == 5
        assert value(s, "poolwarden_decision_latency_seconds_count") == 5
        assert value(s, "poolwarden_decision_latency_seconds_bucket", le="+Inf") == 5
        assert value(s, "poolwarden_decision_latency_seconds_sum") > 0
        assert value(s, "poolwarden_snapshot_version") == 1
        assert value(s, "poolwarden_tenants", tier="new") == 5
        assert value(s, "poolwarden_tenants", tier="suspended") == 0
        assert value(s, "poolwarden_agent_defers_no_decision_total") == 0

        runtime.store.record_moves([TierMove(
            tenant="acme", before=Tier.NEW, after=Tier.SUSPENDED, at=clock[0] + 1,
            rule="hard_bounce_suspend", reason="test", metrics={"hard_bounce_rate": 0.2},
            thresholds={"hard_bounce_suspend": 0.1})])
        clock[0] += 30
        await runtime.rebuild("test")
        held = await route(client, 3, first=100)  # acme is suspended now: HOLD
        assert all(r.startswith(b"action=HOLD ") for r in held), held
        await runtime.flush()  # the decision log, where held mail is counted
        registry_for(ctx)[1].at = float("-inf")  # recount held mail at this scrape
        s = await scrape(ctx)
        assert value(s, "poolwarden_decisions_total", action="FILTER") == 5
        assert value(s, "poolwarden_decisions_total", action="HOLD") == 3
        assert value(s, "poolwarden_decision_latency_seconds_count") == 8
        assert value(s, "poolwarden_snapshot_version") == 2
        assert value(s, "poolwarden_snapshot_age_seconds") == 0
        assert value(s, "poolwarden_tenants", tier="new") == 4
        assert value(s, "poolwarden_tenants", tier="suspended") == 1
        assert value(s, "poolwarden_held_messages", tenant="acme") == 3

        # -- the agent deferring for lack of a snapshot --------------------------------
        runtime.snapshot = None
        deferred = await route(client, 2, first=200)
        assert all(r.startswith(b"action=451 4.3.5") for r in deferred), deferred
        clock[0] += 5
        s = await scrape(ctx)
        assert value(s, "poolwarden_agent_defers_no_decision_total") == 2
        assert value(s, "poolwarden_decisions_total", action="451") == 2
        assert ("poolwarden_snapshot_version", ()) not in s  # no snapshot, no version

        # -- alerts: the move and the defers, recorded (no channel configured) ----------
        runtime.alerter._started = clock[0] - 100
        await runtime.alerter.poll(runtime._in_store_thread)
        s = await scrape(ctx)
        assert value(s, "poolwarden_alerts_total", kind="suspension", channel="none",
                     outcome="recorded") == 1
        assert value(s, "poolwarden_alerts_total", kind="agent_defer", channel="none",
                     outcome="recorded") == 0  # the first poll only sets the baseline
        await route(client, 1, first=300)
        await runtime.alerter.poll(runtime._in_store_thread)
        s = await scrape(ctx)
        assert value(s, "poolwarden_alerts_total", kind="agent_defer", channel="none",
                     outcome="recorded") == 1

        client.writer.close()
        await runtime.server.stop(grace=1.0)

    asyncio.run(main())

    # -- ingestion by serve's own log follower: events by kind, lines, lag ------------------
    log = generate(7, 120)
    log_path.write_text("".join(log.lines), encoding="utf-8")
    runtime.store.add_decisions(log.decisions)
    truth = Counter(e.kind for e in log.expected)

    def ingested() -> tuple[int, int, int]:
        ingestd = runtime.ingest.ingestd
        if ingestd is None:
            return (-1, -1, -1)
        return (ingestd.metrics.lines_read, ingestd.metrics.events_stored,
                sum(runtime.event_counter.by_kind.values()))

    async def ingest_and_scrape() -> tuple[Samples, Samples]:
        await runtime.rebuild("ingest")
        before = await scrape(ctx)
        await runtime.ingest.start()
        try:  # a bounded wait for the follower's rounds, not a speed assertion
            for _ in range(1200):
                if ingested() == (len(log.lines), sum(truth.values()), sum(truth.values())):
                    break
                await asyncio.sleep(0.05)
        finally:
            await runtime.ingest.stop()
        ingestd = runtime.ingest.ingestd
        assert ingestd is not None
        runtime.ingest_lag.seconds(ingestd.metrics.lag_bytes, clock[0])  # caught up: now
        ingestd.metrics.lag_bytes = 4096  # as if Postfix had written more since
        clock[0] += 42
        return before, await scrape(ctx)

    before, after = asyncio.run(ingest_and_scrape())
    for kind, n in truth.items():
        assert value(before, "poolwarden_events_ingested_total", kind=kind) == 0, kind
        assert value(after, "poolwarden_events_ingested_total", kind=kind) == n, kind
    assert ("poolwarden_ingest_lines_read_total", ()) not in before  # no follower yet
    assert value(after, "poolwarden_ingest_events_stored_total") == sum(truth.values())
    assert value(after, "poolwarden_ingest_lines_read_total") == len(log.lines)
    assert value(after, "poolwarden_ingest_lag_bytes") == 4096
    assert value(after, "poolwarden_ingest_lag_seconds") == 42
    runtime.store.close()


def test_a_standalone_app_reports_the_store_snapshot(tmp_path: Path) -> None:
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config

    config_path = tmp_path / "poolwarden.toml"
    config_path.write_text(config_toml(f"sqlite:///{tmp_path / 'pw.db'}"), encoding="utf-8")
    config = load_config(config_path)
    store = open_store(config.store_url)
    ctx = NodeContext(loaded_config=config, store=store, clock=lambda: 2_000_000_000.0)
    s = asyncio.run(scrape(ctx))
    assert value(s, "poolwarden_tenants", tier="new") == 5
    assert not any(name.startswith("poolwarden_decisions") for name, _ in s)  # no agent here
    store.record_moves([TierMove(tenant="hooli", before=Tier.NEW, after=Tier.RISKY,
                                 at=1_999_999_000.0, rule="r", reason="test")])
    ctx.engine_ttl = 0
    s = asyncio.run(scrape(ctx))
    assert value(s, "poolwarden_tenants", tier="new") == 4
    assert value(s, "poolwarden_tenants", tier="risky") == 1
    store.close()


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config

    config_path = tmp_path / "poolwarden.toml"
    config_path.write_text(config_toml(f"sqlite:///{tmp_path / 'pw.db'}"), encoding="utf-8")
    config = load_config(config_path)
    store = open_store(config.store_url)
    first = NodeContext(loaded_config=config, store=store)
    second = NodeContext(loaded_config=config, store=store)
    assert registry_for(first)[0] is not registry_for(second)[0]
    store.close()
