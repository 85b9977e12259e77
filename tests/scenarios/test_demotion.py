"""A shared-pool tenant that starts hitting traps and complaints moves down, with its numbers.

Runs the engine over a real SQLite store, day by day, as reputationd would.
"""

from __future__ import annotations

from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.events import EventKind
from poolwarden.core.model import Tier
from poolwarden.core.policy import RouteRequest
from poolwarden.core.reputation import Scope
from poolwarden.core.snapshot import Action
from poolwarden.services.reputation.engine import Engine
from poolwarden.testing.builders import event

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
DAY = 86400.0
START = 20400 * DAY


def engine_at(tmp_path: Path, now: float) -> Engine:
    config = load_config(EXAMPLE)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    return Engine(config, store, now=now)


def day_of_mail(tenant: str, day: int, *, delivered: int, hard: int = 0, complaints: int = 0,
                traps: int = 0, ip: str = "127.0.0.11"):
    t = START + day * DAY + 3600
    for kind, n in ((EventKind.DELIVERED, delivered), (EventKind.HARD_BOUNCE, hard),
                    (EventKind.COMPLAINT, complaints), (EventKind.TRAP_HIT, traps)):
        for i in range(n):
            yield event(kind, tenant=tenant, time=t, ip=ip, key=f"{tenant}:{day}:{kind}:{i}")


def test_traps_and_complaints_move_a_shared_tenant_down_with_explanations(tmp_path):
    tenant = "northwind-news"  # shared plan, starts good on shared-good
    engine = engine_at(tmp_path, START)
    tiers = []
    for day in range(10):
        bad = day >= 4
        engine.add_events(day_of_mail(tenant, day, delivered=600,
                                      complaints=3 if bad else 0,
                                      traps=1 if day in (4, 6, 7) else 0))
        engine.evaluate(START + day * DAY + 80000)
        tiers.append(engine.standings()[tenant].tier)
    assert tiers[:4] == [Tier.GOOD] * 4
    assert Tier.RISKY in tiers
    assert tiers[-1] is Tier.SUSPENDED
    assert tiers.index(Tier.RISKY) < tiers.index(Tier.SUSPENDED)

    # the stored records, read back through a fresh store connection
    engine.store.close()
    engine = engine_at(tmp_path, START + 10 * DAY)
    moves = list(reversed(engine.store.moves(tenant)))
    assert [(m.before, m.after) for m in moves] == [(Tier.GOOD, Tier.RISKY),
                                                    (Tier.RISKY, Tier.SUSPENDED)]
    down, suspended = moves
    assert down.rule == "trap_hits_risky" and down.actor == "poolwarden"
    assert "trap_hits_risky 1" in down.reason
    assert down.thresholds["trap_hits_risky"] == 1
    assert down.metrics["window"]["trap_hits"] == 1
    assert suspended.thresholds["trap_hits_suspend"] == 3
    assert "3 spam-trap hit(s) ≥ trap_hits_suspend 3" in suspended.reason
    findings = {f["rule"] for f in suspended.metrics["findings"]}
    assert "trap_hits_suspend" in findings
    complaint = suspended.metrics["window"]["complaint_rate"]
    assert complaint["sample"] >= 1000 and complaint["count"] > 0  # numbers stored with it

    decision = engine.route(RouteRequest(recipient="a@gmail.com", tenant=tenant),
                            START + 10 * DAY)
    assert decision.action is Action.HOLD


def test_complaints_alone_demote_once_the_floor_is_reached(tmp_path):
    engine = engine_at(tmp_path, START)
    engine.add_events(day_of_mail("northwind-news", 0, delivered=900, complaints=4))
    assert engine.evaluate(START + 80000) == []  # 900 deliveries < complaint floor 1000
    engine.add_events(day_of_mail("northwind-news", 1, delivered=300, complaints=1))
    moves = engine.evaluate(START + DAY + 80000)  # 5 / 1200 = 0.42 %: risky, not suspended
    assert [(m.after, m.rule) for m in moves] == [(Tier.RISKY, "complaint_risky")]
    assert "over 1200" in moves[0].reason


def test_forty_messages_with_two_bounces_stay_put(tmp_path):
    engine = engine_at(tmp_path, START)
    engine.add_events(day_of_mail("northwind-news", 0, delivered=38, hard=2))
    assert engine.evaluate(START + 80000) == []
    assert engine.standings()["northwind-news"].tier is Tier.GOOD
    # the numbers still show, marked as insufficient data
    m = engine.metrics(Scope.TENANT, "northwind-news", now=START + 80000, days=7)
    assert m.hard_bounce_rate.value == 0.05 and not m.hard_bounce_rate.sufficient


def test_restart_keeps_the_ledger(tmp_path):
    engine = engine_at(tmp_path, START)
    engine.add_events(day_of_mail("corner-bakery", 0, delivered=50, hard=5, ip="127.0.0.13"))
    engine.store.close()
    again = engine_at(tmp_path, START + DAY)
    shares = again.neighbours("127.0.0.13", START + DAY)
    assert [(n.tenant, n.hard_bounces) for n in shares] == [("corner-bakery", 5)]
