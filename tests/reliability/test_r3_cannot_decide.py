"""R3 — can't decide → defer, never guess (docs/testing.md R3; A1 default_action, A3 fail-open).

Every bad state answers a 4xx naming the reason (Postfix keeps the mail queued
at the client), never DUNNO / OK / a FILTER chosen without a route; once the
cause is fixed the same request routes normally.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from poolwarden.core.caps import CapPlan
from poolwarden.core.model import IpState, Plan, Tenant, Tier
from poolwarden.core.snapshot import RoutingSettings, build_snapshot
from poolwarden.services.routing import policy_agent
from poolwarden.services.routing.policy_agent import PolicyAgent, transport_name
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp
from poolwarden.wire.postfix_policy import encode_action

from .support import (
    CLOCK,
    DEFER_RE,
    Client,
    agent_for,
    check_reply,
    rcpt,
    rcpt_attrs,
    serving,
    snapshot,
    with_ip_states,
)

ALL_IPS = {f"127.0.0.{n}" for n in (11, 12, 13, 14, 21, 22, 23, 24, 25)}


def assert_defers(action: str, *reason_words: str) -> None:
    """A 4xx deferral with a reason: never DUNNO/OK/FILTER/PERMIT, never naming an egress IP
    as a route."""
    check_reply(encode_action(action))
    assert DEFER_RE.match(action), action
    first = action.split(" ", 1)[0].upper()
    assert first not in {"DUNNO", "OK", "FILTER", "PERMIT", "PREPEND", "REDIRECT"}, action
    for word in reason_words:
        assert word.lower() in action.lower(), (word, action)


def filters(ips: tuple[str, ...] | set[str]) -> set[str]:
    return {f"FILTER {transport_name(ip)}:" for ip in ips}


# -- (a) no snapshot yet ---------------------------------------------------------------


def test_no_snapshot_yet_defers_every_known_and_unknown_sender_then_routes_once_loaded():
    holder: list = [None]
    agent = PolicyAgent(lambda: holder[0], clock=lambda: CLOCK)
    requests = [rcpt(sender="s@shop.example"), rcpt(sender="s@bank.example"),
                rcpt(sasl_username="shop", sender=""), rcpt(sender="s@nobody.example"),
                rcpt("y@smallbiz.example", sender="s@news.example", instance="i2")]
    for request in requests:
        assert_defers(agent.answer(request), "451 4.3.5", "snapshot")
    assert agent.stats.errors.get("no routing snapshot loaded yet") == len(requests)
    assert not agent.decision_log  # nothing was routed, so nothing is logged as routed
    # the cause is fixed: a snapshot arrives; the very same requests now route
    holder[0] = snapshot()
    assert agent.answer(rcpt(sender="s@shop.example", instance="i9")) in filters(NEW_POOL_IPS)
    assert agent.answer(rcpt(sender="s@bank.example", instance="i10")) == "FILTER pw-127-0-0-21:"


def test_no_snapshot_over_a_real_socket_is_a_451_reply_not_a_silence():
    async def scenario() -> None:
        agent = PolicyAgent(lambda: None, clock=lambda: CLOCK)
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                for n in range(3):
                    action = await client.ask(rcpt_attrs(instance=f"i{n}"))
                    assert_defers(action, "451 4.3.5", "snapshot")
            finally:
                await client.close()

    asyncio.run(scenario())


# -- (b) unknown tenant ---------------------------------------------------------------


@pytest.mark.parametrize(("attrs", "named"), [
    ({"sender": "someone@nobody.example"}, "nobody.example"),
    ({"sender": "someone@xshop.example"}, "xshop.example"),  # not a suffix match of shop
    ({"sender": "someone@shop.example.evil.test"}, "shop.example.evil.test"),
    ({"sender": "", "sasl_username": "mallory"}, "mallory"),
    ({"sender": "", "sasl_username": "shop2"}, "shop2"),
    ({"sender": "", "client_address": "192.0.2.77"}, "192.0.2.77"),
    ({"sender": "", "client_address": ""}, "nobody"),
])
def test_unknown_tenant_defers_naming_who_was_not_found(attrs, named):
    agent = agent_for(snapshot())
    action = agent.answer(rcpt("x@gmail.com", **attrs))
    assert_defers(action, "451 4.3.5", "no tenant", named)
    assert agent.stats.errors.get("unknown tenant") == 1
    assert agent.decision_log[-1].ip is None and agent.decision_log[-1].tenant is None


def test_unknown_tenant_is_routed_once_it_exists():
    agent = agent_for(snapshot())
    assert_defers(agent.answer(rcpt(sender="s@nobody.example")), "nobody.example")
    fixed = small_esp(extra_tenants=(Tenant("nobody", Plan.SHARED, domains=("nobody.example",)),))
    agent = agent_for(snapshot(inventory=fixed))
    assert agent.answer(rcpt(sender="s@nobody.example")) in filters(NEW_POOL_IPS)


# -- (c) no usable IP -------------------------------------------------------------------


@pytest.mark.parametrize(("states", "words"), [
    ({"127_0_0_13": (IpState.ACTIVE, True), "127_0_0_14": (IpState.ACTIVE, True)},
     ["127.0.0.13 is blocklisted", "127.0.0.14 is blocklisted"]),
    ({"127_0_0_13": (IpState.RETIRED, False), "127_0_0_14": (IpState.DRAINING, False)},
     ["127.0.0.13 is retired", "127.0.0.14 is draining"]),
    ({"127_0_0_13": (IpState.ACTIVE, True), "127_0_0_14": (IpState.RETIRED, False)},
     ["127.0.0.13 is blocklisted", "127.0.0.14 is retired"]),
])
def test_pool_without_usable_ip_defers_and_never_borrows_another_pool(states, words):
    inventory = with_ip_states(small_esp(), **states)
    agent = agent_for(snapshot(inventory=inventory))  # shop: tier new → shared-new
    for n in range(40):
        action = agent.answer(rcpt(f"u{n}@gmail.com", instance=f"i{n}"))
        assert_defers(action, "451 4.3.5", "no usable IP", *words)
        assert not any(transport_name(ip) in action for ip in ALL_IPS)
    # fixed: the IPs are usable again → the tenant's own pool, nothing else
    agent = agent_for(snapshot())
    assert agent.answer(rcpt(instance="later")) in filters(NEW_POOL_IPS)


def test_partially_blocklisted_pool_only_uses_the_usable_ip():
    inventory = with_ip_states(small_esp(), **{"127_0_0_13": (IpState.ACTIVE, True)})
    agent = agent_for(snapshot(inventory=inventory))
    answers = {agent.answer(rcpt(f"u{n}@example{n}.org", instance=f"i{n}")) for n in range(200)}
    assert answers == {"FILTER pw-127-0-0-14:"}


@pytest.mark.parametrize("broken", [(IpState.RETIRED, False), (IpState.DRAINING, False)])
def test_dedicated_tenant_whose_only_ip_is_unusable_defers_never_a_shared_ip(broken):
    inventory = with_ip_states(small_esp(), **{"127_0_0_21": broken})
    for tier in (Tier.GOOD, Tier.NEW, Tier.RISKY):
        agent = agent_for(snapshot({"bank": tier}, inventory=inventory))
        for n, recipient in enumerate(("x@gmail.com", "y@smallbiz.example", "z@yahoo.com")):
            action = agent.answer(rcpt(recipient, sender="s@bank.example", instance=f"i{n}"))
            assert_defers(action, "451 4.3.5", "no usable IP", "127.0.0.21")
            assert not any(transport_name(ip) in action
                           for ip in (*GOOD_POOL_IPS, *NEW_POOL_IPS))


def test_listed_dedicated_ip_follows_the_tenants_overflow_plan_and_says_so():
    # a blocklisting is not a broken IP: the tenant's plan decides (warmup_overflow)
    inventory = with_ip_states(small_esp(), **{"127_0_0_21": (IpState.ACTIVE, True)})
    shared = build_snapshot(inventory, tiers={}, dedicated_advised={},
                            settings=RoutingSettings(), version=1, built_at=0)
    agent = agent_for(shared)
    action = agent.answer(rcpt("y@smallbiz.example", sender="s@bank.example", instance="a"))
    assert action in filters(NEW_POOL_IPS)  # overflow to the shared pool for its tier
    assert agent.decision_log[-1].rule == "blocklist:overflow"  # never silently
    held = build_snapshot(inventory, tiers={}, dedicated_advised={},
                          settings=RoutingSettings(), version=1, built_at=0,
                          caps=CapPlan(overflow={"bank": "defer"}))
    action = agent_for(held).answer(rcpt("y@smallbiz.example", sender="s@bank.example",
                                         instance="b"))
    assert_defers(action, "451 4.3.5", "no usable IP", "127.0.0.21 is blocklisted")
    assert not any(transport_name(ip) in action for ip in ALL_IPS)


def test_major_via_shared_with_dead_dedicated_ip_defers_the_non_major_recipients():
    inventory = with_ip_states(small_esp(), **{"127_0_0_22": (IpState.RETIRED, False)})
    agent = agent_for(snapshot(inventory=inventory))
    # the major provider legitimately goes via the shared pool (the plan says so) ...
    assert agent.answer(rcpt("x@gmail.com", sender="s@news.example", instance="a")) \
        in filters(NEW_POOL_IPS)
    # ... the rest would have used the dead dedicated IP: defer, do not fall back to shared
    assert_defers(agent.answer(rcpt("y@smallbiz.example", sender="s@news.example",
                                    instance="b")), "no usable IP", "127.0.0.22")


# -- (d) exception inside the decision code ----------------------------------------------


def _boom(*args, **kwargs):
    raise RuntimeError("injected fault in decide")


def test_exception_in_decide_defers_logs_once_and_counts_every_failure(monkeypatch, caplog):
    agent = agent_for(snapshot())
    monkeypatch.setattr(policy_agent, "route_recipient", _boom)
    caplog.set_level(logging.DEBUG, logger="poolwarden")
    for n in range(100):
        sender = ("s@shop.example", "s@bank.example", "s@news.example")[n % 3]
        action = agent.answer(rcpt(f"u{n}@gmail.com", sender=sender, instance=f"i{n}"))
        assert_defers(action, "451 4.3.5", "internal error")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "injected fault" in errors[0].getMessage()
    assert agent.stats.errors.get("internal error") == 100
    assert agent.stats.by_action.get("451") == 100
    assert not agent.decision_log or all(d.ip is None for d in agent.decision_log)
    # cause fixed: routes again, and no further error is logged
    monkeypatch.undo()
    assert agent.answer(rcpt(instance="after")) in filters(NEW_POOL_IPS)


def test_exception_from_the_snapshot_source_defers():
    def broken_source():
        raise OSError("store unreachable")

    agent = PolicyAgent(broken_source, clock=lambda: CLOCK)
    assert_defers(agent.answer(rcpt()), "451 4.3.5")


def test_exception_in_decide_over_a_real_socket_is_a_reply_and_the_connection_survives(
        monkeypatch):
    monkeypatch.setattr(policy_agent, "route_recipient", _boom)

    async def scenario() -> None:
        agent = agent_for(snapshot())
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                for n in range(20):
                    assert_defers(await client.ask(rcpt_attrs(instance=f"i{n}")),
                                  "451 4.3.5", "internal error")
                monkeypatch.undo()
                assert await client.ask(rcpt_attrs(instance="ok")) in filters(NEW_POOL_IPS)
                assert server.connection_count == 1
            finally:
                await client.close()

    asyncio.run(scenario())
