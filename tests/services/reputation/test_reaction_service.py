"""Reaction rules over real Postfix log lines: ingest -> activation stored -> snapshot
restrictions -> routing; tier moves; backlog; the CLI (SQLite store, no mocks)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import LoadedConfig, load_config
from poolwarden.core.model import Tier
from poolwarden.core.policy import RouteRequest
from poolwarden.core.shaping import RestrictionKind
from poolwarden.main import app
from poolwarden.ports import Store
from poolwarden.services.ingest.log_import import import_logs
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.reputation.reaction import ReactionService

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "poolwarden.toml"
RULES = """\
[[rules]]
name = "test-gmail-428"
provider = "google"
code = '4\\.7\\.28'
trigger = "3/10m"
action = "pause"
duration = "10m"
ramp = [0.5]
ramp_step = "5m"

[[rules]]
name = "test-yahoo-tss04-tenant"
provider = "yahoo"
text = '\\[TSS04\\]'
scope = "tenant"
trigger = "immediate"
action = "tier_down"
duration = "1h"
"""
GMAIL_428 = ("host gmail-smtp-in.l.google.com[192.0.2.27] said: 421-4.7.28 [127.0.0.21] "
             "Our system has detected an unusual rate of 421-4.7.28 unsolicited mail "
             "originating from your IP address. (in reply to end of DATA command)")


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "+00:00"


class LogWriter:
    """Postfix lines (RFC 3339 stamps) for messages submitted with SASL and delivered
    through a ``pw-A-B-C-D`` egress transport."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.n = 0

    def message(self, t: float, sasl: str, sender: str, rcpt: str, ip: str, *, dsn: str,
                status: str, reply: str) -> None:
        self.n += 1
        qid = f"4A{self.n:05X}"
        host = "mx1"
        self.lines += [
            f"{stamp(t)} {host} postfix/smtpd[10]: {qid}: client=c.test[10.0.0.5], "
            f"sasl_method=PLAIN, sasl_username={sasl}",
            f"{stamp(t)} {host} postfix/cleanup[11]: {qid}: message-id=<{qid}@c.test>",
            f"{stamp(t)} {host} postfix/qmgr[12]: {qid}: from=<{sender}>, size=900, nrcpt=1 "
            "(queue active)",
            f"{stamp(t)} {host} postfix/pw-{ip.replace('.', '-')}/smtp[13]: {qid}: "
            f"to=<{rcpt}>, relay=mx.{rcpt.partition('@')[2]}[192.0.2.27]:25, delay=1, "
            f"delays=0/0/0.5/0.5, dsn={dsn}, status={status} ({reply})"]
        if status != "deferred":
            self.lines.append(f"{stamp(t)} {host} postfix/qmgr[12]: {qid}: removed")

    def write(self, path: Path) -> Path:
        path.write_text("".join(line + "\n" for line in self.lines))
        return path


@pytest.fixture
def config(tmp_path: Path) -> LoadedConfig:
    (tmp_path / "rules.toml").write_text(RULES)
    path = tmp_path / "poolwarden.toml"
    path.write_text(EXAMPLE.read_text() + '\n[reaction]\nbuiltin_rules = false\n'
                    'rule_files = ["rules.toml"]\n')
    return load_config(path)


@pytest.fixture
def store(config: LoadedConfig) -> Store:
    opened = open_store(config.store_url)
    yield opened  # type: ignore[misc]
    opened.close()


def gmail_deferrals(log: LogWriter, t0: float, count: int) -> None:
    for i in range(count):
        log.message(t0 + 60 * i, "bigretail", "orders@bigretail.example", f"u{i}@gmail.com",
                    "127.0.0.21", dsn="4.7.28", status="deferred", reply=GMAIL_428)


def ingest(config: LoadedConfig, store: Store, log: LogWriter, path: Path, now: float,
           service: ReactionService | None = None) -> ReactionService:
    service = service or ReactionService(config, store, clock=lambda: now)
    import_logs(config, store, [log.write(path)], on_batch=service.on_batch, now=now)
    return service


def test_the_trigger_count_pauses_that_ip_to_that_provider_only(
        config: LoadedConfig, store: Store, tmp_path: Path) -> None:
    now = time.time()
    t0 = now - 300
    log = LogWriter()
    gmail_deferrals(log, t0, 2)
    log.message(t0 + 30, "bigretail", "orders@bigretail.example", "y@yahoo.com",
                "127.0.0.21", dsn="2.0.0", status="sent", reply="250 ok")
    marker = store.change_marker()
    service = ingest(config, store, log, tmp_path / "a.log", now)
    assert store.reaction_activations() == []  # two of three: not yet
    assert store.change_marker() == marker

    gmail_deferrals(log, t0 + 150, 1)  # the third, within 10 minutes (the others are
    ingest(config, store, log, tmp_path / "a.log", now, service)  # stored: not passed again)
    (a,) = store.reaction_activations()
    assert service.stored == 1 and store.change_marker() > marker
    assert (a.rule, a.ip, a.provider, a.matches) == ("test-gmail-428", "127.0.0.21", "google",
                                                      3)
    assert len(a.lines) == 3 and all("4.7.28" in line for line in a.lines)
    assert "3 replies matching code 4\\.7\\.28 within 2m30s (trigger 3 in 10m)" in a.why

    engine = Engine(config, store, now=now)
    snapshot = engine.snapshot(now)
    kinds = {r.kind for r in snapshot.restrictions.for_ip("127.0.0.21", "google", now)}
    assert kinds == {RestrictionKind.PAUSE, RestrictionKind.CAP}
    gmail = engine.route(RouteRequest("x@gmail.com", tenant="bigretail"), now)
    assert gmail.ip != "127.0.0.21", gmail
    assert "test-gmail-428" in gmail.rule + gmail.reason
    yahoo = engine.route(RouteRequest("x@yahoo.com", tenant="bigretail"), now)
    assert yahoo.ip == "127.0.0.21", yahoo
    # after the duration and the ramp, the IP takes Gmail mail again
    later = a.ends_at + 1
    assert Engine(config, store, now=later).route(
        RouteRequest("x@gmail.com", tenant="bigretail"), later).ip == "127.0.0.21"


def test_a_backlog_that_ended_long_ago_pauses_nothing(config: LoadedConfig, store: Store,
                                                      tmp_path: Path) -> None:
    now = time.time()
    log = LogWriter()
    gmail_deferrals(log, now - 3 * 3600, 3)  # pause 10 min + ramp 5 min: over hours ago
    service = ingest(config, store, log, tmp_path / "old.log", now)
    assert service.state.matched == 0  # older than any rule's reach: not even looked at
    assert store.reaction_activations() == []
    # within reach (10 min period + 15 min effect) but over by now: fired, not stored
    late = LogWriter()
    late.n = 100
    gmail_deferrals(late, now - 24 * 60, 3)
    ingest(config, store, late, tmp_path / "late.log", now, service)
    assert service.stale == 1 and store.reaction_activations() == []


def test_tier_down_moves_the_tenant_with_the_rule_as_reason(
        config: LoadedConfig, store: Store, tmp_path: Path) -> None:
    now = time.time()
    log = LogWriter()
    log.message(now - 60, "northwind", "news@northwind.example", "z@yahoo.com", "127.0.0.11",
                dsn="4.7.0", status="deferred",
                reply="host mta7.am0.yahoodns.net[192.0.2.1] said: 421 4.7.0 [TSS04] Messages "
                      "from 127.0.0.11 temporarily deferred due to unexpected volume or user "
                      "complaints - 4.16.55.1 (in reply to MAIL FROM command)")
    ingest(config, store, log, tmp_path / "y.log", now)
    (move,) = store.moves("northwind-news")
    assert (move.before, move.after, move.rule) == (Tier.GOOD, Tier.NEW,
                                                    "reaction:test-yahoo-tss04-tenant")
    assert "1 reply matching text /\\[TSS04\\]/" in move.reason
    (a,) = store.reaction_activations(tenant="northwind-news")
    assert a.action.value == "tier_down" and a.scope.value == "tenant"
    # the reputation engine does not move it back up while the activation lasts
    from poolwarden.services.reputation.reaction import promotion_held
    assert promotion_held(store.reaction_activations(active_at=now), now) == {"northwind-news"}


def test_a_pinned_tenant_is_not_moved(config: LoadedConfig, store: Store,
                                      tmp_path: Path) -> None:
    now = time.time()
    Engine(config, store, now=now).override("northwind-news", Tier.GOOD, actor="op",
                                            why="contract", now=now - 10, source="cli")
    log = LogWriter()
    log.message(now - 5, "northwind", "news@northwind.example", "z@yahoo.com", "127.0.0.11",
                dsn="4.7.0", status="deferred", reply="421 4.7.0 [TSS04] deferred")
    ingest(config, store, log, tmp_path / "p.log", now)
    assert [m.rule for m in store.moves("northwind-news")] == ["override"]
    assert len(store.reaction_activations()) == 1  # still recorded, for the operator


def test_tenant_and_ip_show_list_the_activation(config: LoadedConfig, store: Store,
                                                tmp_path: Path) -> None:
    now = time.time()
    log = LogWriter()
    gmail_deferrals(log, now - 200, 3)
    ingest(config, store, log, tmp_path / "c.log", now)
    runner = CliRunner()
    shown = runner.invoke(app, ["tenant", "show", "bigretail", "-c", str(config.path),
                                "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    (row,) = json.loads(shown.output)["reactions"]
    assert (row["rule"], row["ip"], row["phase"], row["effect_now"], row["in_force"]) == (
        "test-gmail-428", "127.0.0.21", "active", "pause", True)
    assert len(row["lines"]) == 3 and row["trigger_count"] == 3
    text = runner.invoke(app, ["ip", "show", "127.0.0.21", "-c", str(config.path)],
                         catch_exceptions=False).output
    assert "test-gmail-428" in text and "pause" in text and "4.7.28" in text
    other = json.loads(runner.invoke(app, ["ip", "show", "127.0.0.22", "-c",
                                           str(config.path), "--json"]).output)
    assert other["reactions"] == []
    valid = runner.invoke(app, ["validate", str(config.path)], catch_exceptions=False)
    assert "2 reaction rules" in valid.output


def _config_with(tmp_path: Path, rules: str, example: str | None = None) -> LoadedConfig:
    (tmp_path / "rules.toml").write_text(rules)
    path = tmp_path / "poolwarden.toml"
    path.write_text((example or EXAMPLE.read_text()) + '\n[reaction]\nbuiltin_rules = false\n'
                    'rule_files = ["rules.toml"]\n')
    return load_config(path)


def test_a_paused_ip_defers_when_the_tenant_says_defer(tmp_path: Path) -> None:
    example = EXAMPLE.read_text().replace('name = "bigretail"\nplan = "dedicated"\n',
                                          'name = "bigretail"\nplan = "dedicated"\n'
                                          'warmup_overflow = "defer"\n')
    assert 'warmup_overflow = "defer"' in example
    config = _config_with(tmp_path, RULES, example)
    store = open_store(config.store_url)
    try:
        now = time.time()
        log = LogWriter()
        gmail_deferrals(log, now - 100, 3)
        ingest(config, store, log, tmp_path / "d.log", now)
        decision = Engine(config, store, now=now).route(
            RouteRequest("x@gmail.com", tenant="bigretail"), now)
        assert decision.action.value == "defer" and decision.ip is None, decision
    finally:
        store.close()


def test_reroute_sends_the_tenants_mail_to_that_provider_to_the_named_pool(
        tmp_path: Path) -> None:
    rules = """\
[[rules]]
name = "reroute-unsolicited"
provider = "google"
text = 'Our system has detected that this message'
scope = "tenant"
trigger = "2/1h"
action = "reroute"
pool = "shared-good"
duration = "1h"
"""
    config = _config_with(tmp_path, rules)
    store = open_store(config.store_url)
    try:
        now = time.time()
        log = LogWriter()
        for i in range(2):
            log.message(now - 100 + i, "bigretail", "orders@bigretail.example",
                        f"c{i}@gmail.com", "127.0.0.21", dsn="5.7.1", status="bounced",
                        reply="host gmail-smtp-in.l.google.com[192.0.2.1] said: 550-5.7.1 Our "
                              "system has detected that this message is 550-5.7.1 likely "
                              "unsolicited mail. (in reply to end of DATA command)")
        ingest(config, store, log, tmp_path / "r.log", now)
        (a,) = store.reaction_activations(tenant="bigretail")
        assert (a.scope.value, a.pool, a.ip) == ("tenant", "shared-good", "127.0.0.21")
        engine = Engine(config, store, now=now)
        gmail = engine.route(RouteRequest("x@gmail.com", tenant="bigretail"), now)
        assert gmail.ip in {"127.0.0.11", "127.0.0.12"} and gmail.pool == "shared-good", gmail
        yahoo = engine.route(RouteRequest("x@yahoo.com", tenant="bigretail"), now)
        assert yahoo.ip == "127.0.0.21"
        # another tenant on the same provider is not rerouted
        other = engine.route(RouteRequest("x@gmail.com", tenant="corner-bakery"), now)
        assert other.pool == "shared-new"
    finally:
        store.close()
