"""Alerts through a real webhook receiver and a real SMTP sink on loopback.

The receiver is ``http.server`` on 127.0.0.1 in a thread; the sink is aiosmtpd on
127.0.0.1; the store is SQLite. Covers: a tier move -> exactly one POST and one mail
with the link and the numbers; deduplication of a standing condition (and re-alert
once it cleared); the per-channel rate limit (suppressed alerts counted and
recorded); a failing webhook (500 and down) retried, and routing answered while an
alert is still being delivered.
"""

from __future__ import annotations

import asyncio
import email
import json
import socket
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import LoadedConfig, load_config
from poolwarden.core.model import Tier
from poolwarden.core.tiers import TierMove
from poolwarden.services.alerts.watcher import Alerter
from poolwarden.services.ingest.pipeline import IngestMetrics
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.routing.policy_agent import PolicyAgent
from tests.reliability.support import Client, encode_request, rcpt_attrs, serving

NOW = 1_800_000_000.0
BASE = "http://dash.example:8025"


class Receiver:
    """A webhook receiver: records every POST; answers ``status``; can hold requests."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        self.hold = threading.Event()
        self.hold.set()  # set: answer at once
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.posts.append({"path": self.path, "type": self.headers["content-type"],
                                       "body": json.loads(body)})
                receiver.arrived.set()
                receiver.hold.wait(30)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


class Sink:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def write_config(tmp_path: Path, alerts: str) -> LoadedConfig:
    path = tmp_path / "poolwarden.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path}/pw.db"

[alerts]
base_url = "{BASE}/"
retry_backoff = 0.05
{alerts}

[[ips]]
address = "127.0.0.11"
helo = "mta11.example.net"

[[ips]]
address = "127.0.0.12"
helo = "mta12.example.net"

[[pools]]
name = "shared"
kind = "shared"
tiers = ["good", "new", "risky"]
ips = ["127.0.0.11", "127.0.0.12"]

""" + "".join(f"""
[[tenants]]
name = "{name}"
plan = "shared"
domains = ["{name}.example"]
sasl_usernames = ["{name}"]
""" for name in ("shop", "bank", "news", "law", "big", "tiny", "zoo")), encoding="utf-8")
    return load_config(path)


def suspension(tenant: str = "shop", at: float = NOW + 1) -> TierMove:
    return TierMove(tenant=tenant, before=Tier.RISKY, after=Tier.SUSPENDED, at=at,
                    rule="hard_bounce_suspend",
                    reason="hard-bounce rate 12.00% over 500 messages >= 10.00%",
                    metrics={"hard_bounce_rate": 0.12, "volume": 500},
                    thresholds={"hard_bounce_suspend": 0.1})


def make_alerter(config: LoadedConfig, store: SqlStore, **kwargs: Any) -> Alerter:
    return Alerter(lambda: config, store, clock=lambda: NOW + 10, **kwargs)


def test_a_tier_move_sends_one_webhook_post_and_one_mail(
        tmp_path: Path, receiver: Receiver, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
smtp_host = "127.0.0.1"
smtp_port = {port}
mail_from = "pw@ops.example"
mail_to = ["oncall@ops.example"]""")
    store = open_store(config.store_url)
    alerter = Alerter(lambda: config, store, clock=lambda: NOW + 10)
    alerter._started = NOW  # moves after this are news
    store.record_moves([suspension()])

    async def run() -> None:
        await alerter.poll()
        await alerter.poll()  # the same move again: nothing new
        await alerter.aclose()

    asyncio.run(run())

    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["path"] == "/hook" and post["type"] == "application/json"
    body = post["body"]
    assert body["kind"] == "suspension" and body["tenant"] == "shop"
    assert body["link"] == f"{BASE}/tenants/shop"
    assert body["numbers"]["metrics"] == {"hard_bounce_rate": 0.12, "volume": 500}
    assert body["numbers"]["thresholds"] == {"hard_bounce_suspend": 0.1}
    assert "12.00%" in body["text"] and "hard_bounce_suspend" in body["text"]

    assert len(handler.messages) == 1
    sender, rcpts, msg = handler.messages[0]
    assert sender == "pw@ops.example" and rcpts == ["oncall@ops.example"]
    assert "shop" in msg["Subject"] and "suspended" in msg["Subject"]
    text = msg.get_payload(decode=True).decode()
    assert f"{BASE}/tenants/shop" in text
    assert "metrics.hard_bounce_rate: 0.12" in text
    assert "thresholds.hard_bounce_suspend: 0.1" in text

    rows = store.alerts()
    assert [(r.kind, r.tenant, r.outcome) for r in rows] == [
        ("suspension", "shop", {"webhook": "sent", "email": "sent"})]
    assert alerter.stats.outcomes == {("suspension", "webhook", "sent"): 1,
                                      ("suspension", "email", "sent"): 1}
    store.close()


def test_a_standing_condition_alerts_once_until_it_clears(tmp_path: Path,
                                                           receiver: Receiver) -> None:
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
ingest_lag_bytes = 1000""")
    store = open_store(config.store_url)
    ingest = IngestMetrics()
    alerter = make_alerter(config, store, ingest=lambda: ingest)

    async def run() -> None:
        ingest.lag_bytes = 5000
        await alerter.poll()
        await alerter.poll()  # still behind: the same condition, no second alert
        assert len(receiver.posts) == 1
        ingest.lag_bytes = 0
        await alerter.poll()  # caught up: the condition clears
        ingest.lag_bytes = 7000
        await alerter.poll()  # behind again: a new alert
        await alerter.aclose()

    asyncio.run(run())
    assert [p["body"]["kind"] for p in receiver.posts] == ["ingest_lag", "ingest_lag"]
    assert [p["body"]["numbers"]["lag_bytes"] for p in receiver.posts] == [5000, 7000]
    assert receiver.posts[0]["body"]["numbers"]["threshold_bytes"] == 1000
    assert len(store.alerts()) == 2
    store.close()


def test_a_restart_does_not_repeat_what_was_sent(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
ingest_lag_bytes = 1000""")
    store = open_store(config.store_url)
    ingest = IngestMetrics(lag_bytes=5000)
    store.record_moves([suspension()])

    async def run() -> None:
        for _ in range(2):  # two alerter lifetimes over the same store
            alerter = make_alerter(config, store, ingest=lambda: ingest)
            alerter._started = NOW
            await alerter.poll()
            await alerter.aclose()

    asyncio.run(run())
    assert sorted(p["body"]["kind"] for p in receiver.posts) == ["ingest_lag", "suspension"]
    store.close()


def test_the_rate_limit_suppresses_and_counts(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
rate_burst = 3
rate_per_hour = 0.001""")
    store = open_store(config.store_url)
    alerter = make_alerter(config, store)
    alerter._started = NOW
    tenants = ("shop", "bank", "news", "law", "big", "tiny", "zoo")
    store.record_moves([suspension(t, NOW + 1 + i) for i, t in enumerate(tenants)])

    async def run() -> None:
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert len(receiver.posts) == 3
    assert alerter.stats.outcomes == {("suspension", "webhook", "sent"): 3,
                                      ("suspension", "webhook", "suppressed"): 4}
    rows = store.alerts()
    assert len(rows) == 7  # every alert is recorded, sent or not
    assert sorted(r.outcome["webhook"] for r in rows if r.outcome) == ["sent"] * 3 + [
        "suppressed"] * 4
    store.close()


def test_a_failing_webhook_is_retried_and_mail_still_goes(
        tmp_path: Path, receiver: Receiver, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}", "{down}"]
retries = 2
smtp_host = "127.0.0.1"
smtp_port = {port}
mail_to = ["oncall@ops.example"]""")
    store = open_store(config.store_url)
    alerter = make_alerter(config, store)
    alerter._started = NOW
    receiver.status = 500
    store.record_moves([suspension()])

    async def run() -> None:
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert len(receiver.posts) == 3  # the first try and two retries
    webhook = alerter.channels[0]
    assert webhook.name == "webhook" and getattr(webhook, "attempts", None) == 6
    assert len(handler.messages) == 1
    [row] = store.alerts()
    assert row.outcome == {"webhook": "failed", "email": "sent"}
    store.close()


def test_routing_is_answered_while_an_alert_is_being_delivered(
        tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
retries = 1""")
    store = open_store(config.store_url)
    snapshot = Engine(config, store, now=NOW).snapshot(NOW)
    agent = PolicyAgent(lambda: snapshot, clock=lambda: NOW)
    alerter = make_alerter(config, store)
    alerter._started = NOW
    store.record_moves([suspension()])
    receiver.status = 500
    receiver.hold.clear()  # the receiver sits on the first request

    async def run() -> None:
        async with serving(agent) as server:
            delivery = asyncio.create_task(alerter.poll())
            await asyncio.to_thread(receiver.arrived.wait, 30)
            client = await Client.tcp(server)
            client.send(encode_request(rcpt_attrs(sender="x@bank.example",
                                                  sasl_username="bank")))
            reply = await client.reply()
            assert reply.startswith(b"action=FILTER pw-"), reply
            assert not delivery.done()  # the alert is still in flight
            receiver.hold.set()
            rows = await delivery
            assert [r.outcome for r in rows] == [{"webhook": "failed"}]
            client.writer.close()
        await alerter.aclose()

    asyncio.run(run())
    assert len(receiver.posts) == 2
    store.close()


def test_a_bad_neighbour_on_a_shared_ip_alerts_with_its_shares(
        tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.core.events import EventKind
    from poolwarden.testing.builders import many

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
neighbour_share = 0.6
neighbour_min_signals = 10""")
    store = open_store(config.store_url)
    engine = Engine(config, store, now=NOW)
    at = NOW - 3600
    engine.add_events([*many(EventKind.DELIVERED, 200, tenant="bank", time=at),
                       *many(EventKind.HARD_BOUNCE, 2, tenant="bank", time=at),
                       *many(EventKind.DELIVERED, 50, tenant="shop", time=at),
                       *many(EventKind.HARD_BOUNCE, 8, tenant="shop", time=at)])
    clock = [NOW + 10]
    alerter = Alerter(lambda: config, store, clock=lambda: clock[0],
                      engine=lambda c, now: Engine(c, store, now=now))

    async def run() -> None:
        await alerter.poll()
        clock[0] += 301  # ranked again (not every poll ranks): still a bad neighbour
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert len(receiver.posts) == 1
    body = receiver.posts[0]["body"]
    assert (body["kind"], body["tenant"], body["ip"]) == ("bad_neighbour", "shop", "127.0.0.11")
    assert body["link"] == f"{BASE}/ips/127.0.0.11"
    assert body["numbers"]["hard_bounces"] == 8 and body["numbers"]["bounce_share"] == 0.8
    assert body["numbers"]["ip_signals"] == 10 and body["numbers"]["threshold"] == 0.6
    store.close()


def test_a_reaction_rule_firing_alerts_once(tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.core.reaction import Activation, ReactionAction, RuleScope

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]""")
    store = open_store(config.store_url)
    alerter = make_alerter(config, store)
    fired = Activation(rule="gmail-421-4.7.28", action=ReactionAction.PAUSE,
                       scope=RuleScope.IP, provider="google", ip="127.0.0.12", tenant=None,
                       started_at=NOW - 60, until=NOW + 3600, matches=5, threshold=5,
                       period=600.0, why="5 replies 421 4.7.28 in 10 min",
                       lines=("421-4.7.28 [127.0.0.12] Our system has detected...",))

    async def run() -> None:
        await asyncio.to_thread(store.add_reaction_activations, [fired], recorded_at=NOW - 50)
        await alerter.poll()
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert len(receiver.posts) == 1
    body = receiver.posts[0]["body"]
    assert body["kind"] == "reaction" and body["link"] == f"{BASE}/ips/127.0.0.12"
    assert body["numbers"]["matches"] == 5 and body["numbers"]["threshold"] == 5
    assert body["numbers"]["action"] == "pause" and body["numbers"]["provider"] == "google"
    assert "421-4.7.28" in body["numbers"]["lines"][0]
    store.close()


def test_a_stalled_warmup_stage_alerts(tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.core.warmup import WarmupState

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
warmup_stall_days = 3""")
    store = open_store(config.store_url)
    today = int((NOW + 10) // 86400)
    held = WarmupState("ip", "127.0.0.21", "google", "sparkpost", stage=2,
                       started_day=today - 9, stage_day=today - 4, judged_day=today - 1,
                       last_active_day=today - 1,
                       why="day 9, stage 3 of 'sparkpost' held: delivered 700 of the 1,000 "
                       "cap (70%), needs more than 90%")
    fresh = WarmupState("ip", "127.0.0.22", "google", "sparkpost", stage=1,
                        started_day=today - 9, stage_day=today - 1, judged_day=today - 1,
                        why="day 8, stage 1 of 'sparkpost' done: ...")
    alerter = make_alerter(config, store, warmup=lambda: [held, fresh])

    async def run() -> None:
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert [p["body"]["kind"] for p in receiver.posts] == ["warmup_stall"]
    body = receiver.posts[0]["body"]
    assert body["ip"] == "127.0.0.21" and body["link"] == f"{BASE}/ips/127.0.0.21"
    assert body["numbers"]["days_at_stage"] == 4 and body["numbers"]["stage"] == 3
    assert "700 of the 1,000" in body["text"]
    store.close()


def test_a_route_spf_does_not_cover_alerts_before_a_move_uses_it(
        tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.core.auth import Finding

    config = write_config(tmp_path, f'webhook_urls = ["{receiver.url}"]')
    store = open_store(config.store_url)
    record = "v=spf1 ip4:127.0.0.11 -all"
    store.save_auth_findings([
        Finding("shop", "shop.example", "spf-route", "ok", "authorized", record, "shared",
                "127.0.0.11"),
        Finding("shop", "shop.example", "spf-route", "error", "127.0.0.12 not authorized",
                record, "shared", "127.0.0.12"),
        Finding("bank", "bank.example", "spf", "error", "no SPF record")],
        at=NOW, tenants=["shop", "bank"])
    alerter = make_alerter(config, store)

    async def run() -> None:
        await alerter.poll()
        await alerter.poll()  # a standing condition: once
        await alerter.aclose()

    asyncio.run(run())
    assert [p["body"]["kind"] for p in receiver.posts] == ["auth_route"]
    body = receiver.posts[0]["body"]
    assert body["tenant"] == "shop" and body["link"] == f"{BASE}/tenants/shop"
    assert body["numbers"]["ips"] == ["127.0.0.12"] and body["numbers"]["route"] == "shared"
    assert record in body["text"] and "would fail SPF" in body["text"]
    assert "turn on routing.skip_spf_unauthorized" in body["text"]
    store.close()


def test_the_alert_loop_runs_inside_serve(tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.adapters.listeners import Listen
    from poolwarden.services.runtime import Runtime

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]
poll_interval = 0.05""")
    runtime = Runtime(config.path, listens=[Listen.parse("tcp:127.0.0.1:0")])

    async def run() -> None:
        await runtime.start()
        try:
            await asyncio.to_thread(runtime.store.record_moves,
                                    [suspension("zoo", at=runtime.clock() + 1)])
            # bounded wait for the loop's next rounds (not a speed assertion): until the
            # alert is sent and recorded
            for _ in range(600):
                if await asyncio.to_thread(runtime.store.alerts):  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.05)
        finally:
            await runtime.shutdown()

    asyncio.run(run())
    assert [(p["body"]["kind"], p["body"]["tenant"]) for p in receiver.posts] == [
        ("suspension", "zoo")]
    check = open_store(config.store_url)
    assert [(r.kind, r.outcome) for r in check.alerts()] == [
        ("suspension", {"webhook": "sent"})]
    check.close()


def test_a_reloaded_configuration_changes_the_channels(tmp_path: Path,
                                                       receiver: Receiver) -> None:
    first = write_config(tmp_path, "")
    store = open_store(first.store_url)
    current = [first]
    alerter = Alerter(lambda: current[0], store, clock=lambda: NOW + 10)
    alerter._started = NOW
    store.record_moves([suspension("shop", NOW + 1)])

    async def run() -> None:
        await alerter.poll()  # no channel yet: recorded only
        current[0] = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]""")
        store.record_moves([suspension("bank", NOW + 2)])
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert [p["body"]["tenant"] for p in receiver.posts] == ["bank"]
    assert [(r.tenant, r.outcome) for r in store.alerts()] == [
        ("bank", {"webhook": "sent"}), ("shop", {})]
    store.close()


def test_log_gaps_and_agent_defers_alert(tmp_path: Path, receiver: Receiver) -> None:
    from poolwarden.services.routing.policy_agent import AgentStats

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]""")
    store = open_store(config.store_url)
    ingest = IngestMetrics(gaps=1, gap_bytes=100)
    stats = AgentStats(errors={"unknown tenant": 7})
    alerter = make_alerter(config, store, ingest=lambda: ingest, agent=lambda: stats)

    async def run() -> None:
        await alerter.poll()  # the baseline: what happened before this process started
        ingest.gaps, ingest.gap_bytes, ingest.gap_lines = 3, 4196, 12
        stats.errors["no routing snapshot loaded yet"] = 5
        stats.errors["unknown tenant"] = 9  # a configured answer, not a lack of decision
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    bodies = {p["body"]["kind"]: p["body"] for p in receiver.posts}
    assert sorted(bodies) == ["agent_defer", "ingest_gap"]
    assert bodies["ingest_gap"]["numbers"]["new_gaps"] == 2
    assert bodies["ingest_gap"]["numbers"]["bytes_lost"] == 4096
    assert bodies["agent_defer"]["numbers"]["deferred"] == 5
    assert bodies["agent_defer"]["numbers"]["causes"] == {"no routing snapshot loaded yet": 5}
    assert bodies["agent_defer"]["link"] == f"{BASE}/"
    store.close()


def test_a_failing_source_does_not_silence_the_others(tmp_path: Path,
                                                      receiver: Receiver) -> None:
    from poolwarden.core.errors import StoreError

    class BrokenReactions(SqlStore):  # a real store whose activations table fails to read
        def reaction_activations(self, **kwargs: Any) -> list[Any]:
            raise StoreError("store: read reaction activations failed: disk I/O error")

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]""")
    opened = open_store(config.store_url)
    store = BrokenReactions(opened.engine)
    alerter = make_alerter(config, store)
    alerter._started = NOW
    store.record_moves([suspension()])

    async def run() -> None:
        await alerter.poll()
        await alerter.aclose()

    asyncio.run(run())
    assert [p["body"]["kind"] for p in receiver.posts] == ["suspension"]
    assert alerter.stats.errors == 1
    opened.close()


def test_policy_connection_limit_reached_alerts_once_per_new_shedding(
        tmp_path: Path, receiver: Receiver) -> None:
    from types import SimpleNamespace

    config = write_config(tmp_path, f"""webhook_urls = ["{receiver.url}"]""")
    store = open_store(config.store_url)
    server = SimpleNamespace(shed={"not_loopback": 4}, idle_closed=0, max_connections=1000,
                             connection_count=12)
    alerter = make_alerter(config, store, connections=lambda: server)

    async def run() -> None:
        await alerter.poll()  # refusals of non-loopback peers are no limit: no alert
        server.shed["peer_limit"] = 1500
        server.connection_count = 1000
        await alerter.poll()
        await alerter.poll()  # nothing shed since: quiet
        await alerter.aclose()

    asyncio.run(run())
    bodies = [p["body"] for p in receiver.posts]
    assert [b["kind"] for b in bodies] == ["policy_connections"]
    assert bodies[0]["numbers"]["shed"] == 1500
    assert bodies[0]["numbers"]["by_reason"] == {"peer_limit": 1500}
    assert "1000 open, limit 1000" in bodies[0]["text"]
    store.close()
