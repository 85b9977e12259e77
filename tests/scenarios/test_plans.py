"""One scenario per plan: where a Gmail recipient and a small-domain recipient leave from."""

from __future__ import annotations

import random

import pytest

from poolwarden.core.model import IpState, Tier
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.snapshot import Action, RoutingSettings, build_snapshot
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp

NOW = 20000 * 86400.0


def snap(tiers=None, advised=None, inventory=None):
    return build_snapshot(inventory or small_esp(), tiers=tiers or {},
                          dedicated_advised=advised or {}, settings=RoutingSettings(),
                          version=1, built_at=NOW)


def route(snapshot, tenant, recipient, sender=None):
    return decide(RouteRequest(recipient=recipient, tenant=tenant, sender=sender), snapshot, NOW)


GMAIL, SMALL = "alice@gmail.com", "bob@smallbiz.example"


def test_shared_plan_follows_the_tier():
    new = snap()
    for rcpt in (GMAIL, SMALL):
        d = route(new, "shop", rcpt)
        assert d.action is Action.ROUTE and d.ip in NEW_POOL_IPS and d.pool == "shared-new"
    good = snap({"shop": Tier.GOOD})
    for rcpt in (GMAIL, SMALL):
        d = route(good, "shop", rcpt)
        assert d.ip in GOOD_POOL_IPS and d.pool == "shared-good"
        assert "tier good" in d.reason


def test_dedicated_plan_always_uses_its_own_ip():
    for tier in (Tier.NEW, Tier.GOOD, Tier.RISKY):
        s = snap({"bank": tier})
        assert route(s, "bank", GMAIL).ip == "127.0.0.21"
        assert route(s, "bank", SMALL).ip == "127.0.0.21"


def test_major_via_shared_splits_by_provider():
    s = snap({"news": Tier.GOOD})
    gmail = route(s, "news", GMAIL)
    small = route(s, "news", SMALL)
    assert gmail.ip in GOOD_POOL_IPS and gmail.provider == "google"
    assert "major provider" in gmail.reason
    assert small.ip == "127.0.0.22" and small.provider == "other"
    # a Google Workspace company domain counts as Google through its MX
    workspace = decide(RouteRequest(recipient="ceo@acme-corp.example", tenant="news",
                                    mx_hosts=("aspmx.l.google.com",)), s, NOW)
    assert workspace.ip in GOOD_POOL_IPS and workspace.provider == "google"
    # subdomain of a provider domain
    assert route(s, "news", "x@eu.icloud.com").ip in GOOD_POOL_IPS


def test_prove_then_share_graduates_when_good_and_falls_back_when_not():
    before = snap({"startup": Tier.NEW})
    for rcpt in (GMAIL, SMALL):
        assert route(before, "startup", rcpt).ip == "127.0.0.23"
    after = snap({"startup": Tier.GOOD})
    for rcpt in (GMAIL, SMALL):
        d = route(after, "startup", rcpt)
        assert d.ip in GOOD_POOL_IPS and "graduated" in d.reason
    risky = snap({"startup": Tier.RISKY})
    assert route(risky, "startup", GMAIL).ip == "127.0.0.23"


def test_private_routing_uses_own_ip_only_for_listed_domains():
    s = snap({"law": Tier.GOOD})
    for rcpt in (GMAIL, SMALL):
        listed = route(s, "law", rcpt, sender="partner@law.example")
        other = route(s, "law", rcpt, sender="editor@lawblog.example")
        assert listed.ip == "127.0.0.24"
        assert other.ip in GOOD_POOL_IPS
    assert route(s, "law", GMAIL).ip in GOOD_POOL_IPS  # no sender: not a listed domain


def test_auto_follows_the_volume_advice():
    small = snap({"big": Tier.GOOD}, advised={"big": False})
    assert route(small, "big", GMAIL).ip in GOOD_POOL_IPS
    assert "volume advice says shared" in route(small, "big", SMALL).reason
    large = snap({"big": Tier.GOOD}, advised={"big": True})
    assert route(large, "big", GMAIL).ip == "127.0.0.25"
    assert route(large, "big", SMALL).ip == "127.0.0.25"


@pytest.mark.parametrize("tenant", ["shop", "bank", "news", "startup", "law", "big"])
def test_suspended_is_held_and_off_platform_refused_for_every_plan(tenant):
    held = route(snap({tenant: Tier.SUSPENDED}), tenant, GMAIL)
    assert held.action is Action.HOLD and held.ip is None
    refused = route(snap({tenant: Tier.OFF_PLATFORM}), tenant, SMALL)
    assert refused.action is Action.REJECT and refused.ip is None


def test_cannot_decide_means_defer():
    s = snap()
    unknown = decide(RouteRequest(recipient=GMAIL, sender="x@nobody.example"), s, NOW)
    assert unknown.action is Action.DEFER and "no tenant" in unknown.reason
    assert route(s, "shop", "no-domain").action is Action.DEFER


def test_retired_dedicated_ip_defers_instead_of_using_another_ip():
    from dataclasses import replace
    inv = small_esp()
    ips = tuple(replace(ip, state=IpState.RETIRED) if ip.address == "127.0.0.21" else ip
                for ip in inv.ips)
    s = snap(inventory=replace(inv, ips=ips))
    d = route(s, "bank", GMAIL)
    assert d.action is Action.DEFER and d.ip is None and "retired" in d.reason


def test_blocklisted_dedicated_ip_overflows_per_the_plan_and_says_why():
    from dataclasses import replace
    inv = small_esp()
    ips = tuple(replace(ip, blocklisted=True) if ip.address == "127.0.0.21" else ip
                for ip in inv.ips)
    s = snap(inventory=replace(inv, ips=ips))
    d = route(s, "bank", GMAIL)
    assert d.action is Action.ROUTE and d.ip != "127.0.0.21"
    assert d.rule == "blocklist:overflow" and "127.0.0.21 is blocklisted" in d.reason


def test_blocklisted_shared_ip_is_skipped():
    from dataclasses import replace
    inv = small_esp()
    ips = tuple(replace(ip, blocklisted=True) if ip.address == NEW_POOL_IPS[0] else ip
                for ip in inv.ips)
    s = snap(inventory=replace(inv, ips=ips))
    chosen = {route(s, "shop", f"u{i}@gmail.com").ip for i in range(50)}
    assert chosen == {NEW_POOL_IPS[1]}


def test_tenant_identified_by_sasl_sender_domain_and_client_address():
    s = snap()
    assert decide(RouteRequest(recipient=GMAIL, sasl_username="shop"), s, NOW).pool == \
        "shared-new"
    by_sender = decide(RouteRequest(recipient=SMALL, sender="a@mail.bank.example"), s, NOW)
    assert by_sender.ip == "127.0.0.21"
    by_client = decide(RouteRequest(recipient=SMALL, client_address="10.0.0.5"), s, NOW)
    assert by_client.ip in NEW_POOL_IPS  # law, not a private domain


def test_choice_within_a_pool_is_deterministic_and_spread():
    s = snap()
    first = [route(s, "shop", f"u{i}@gmail.com").ip for i in range(200)]
    again = [route(s, "shop", f"u{i}@gmail.com").ip for i in range(200)]
    assert first == again
    assert set(first) == set(NEW_POOL_IPS)
    seeded = [decide(RouteRequest(recipient=GMAIL, tenant="shop"), s, NOW,
                     random.Random(3)).ip for _ in range(5)]
    assert seeded == [decide(RouteRequest(recipient=GMAIL, tenant="shop"), s, NOW,
                             random.Random(3)).ip for _ in range(5)]


def test_unknown_sasl_user_does_not_borrow_a_tenant_by_sender_domain():
    s = snap()
    d = decide(RouteRequest(recipient=GMAIL, sasl_username="mallory",
                            sender="ceo@bank.example"), s, NOW)
    assert d.action is Action.DEFER
    assert "mallory" in d.reason
