"""routing.skip_spf_unauthorized in decide(): never an IP the sender domain's SPF refuses.

The snapshot carries, per MAIL FROM domain, the egress IPs its SPF does not authorize.
decide() then takes another IP of the same route, else another route of the tenant, else
defers (rule ``spf:defer``); mail overflowing from a capped IP stays on the overflow route
(or waits) rather than going back over the cap. Without the setting (an empty map)
nothing changes. Pure: snapshots from ``small_esp``.
"""

from __future__ import annotations

from poolwarden.core import rule_names
from poolwarden.core.caps import Cap, CapCounter, CapPlan
from poolwarden.core.message import MessageRoute, route_recipient
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.snapshot import Action, Decision, RoutingSettings, Snapshot, build_snapshot
from poolwarden.testing.builders import NEW_POOL_IPS, small_esp

NOW = 20000 * 86400.0 + 3600
WARM = "127.0.0.23"  # startup's dedicated IP (prove-then-share)
GMAIL = "a@gmail.com"


def snap(denied: dict[str, frozenset[str]], caps: dict[tuple[str, str], Cap] | None = None
         ) -> Snapshot:
    plan = CapPlan(ip_caps=caps or {}, overflow={},
                   full_caps={"google": 1000, "yahoo": 1000, "other": 1000}, domain_caps={})
    return build_snapshot(small_esp(), tiers={}, dedicated_advised={},
                          settings=RoutingSettings(), version=1, built_at=NOW, caps=plan,
                          spf_denied=denied)


def route(s: Snapshot, tenant: str, sender: str, rcpt: str = GMAIL,
          counts: CapCounter | None = None) -> Decision:
    return decide(RouteRequest(rcpt, tenant=tenant, sender=sender), s, NOW, counts=counts)


def test_an_unauthorized_ip_of_the_pool_is_skipped_for_the_others() -> None:
    first, second = NEW_POOL_IPS
    s = snap({"shop.example": frozenset({first})})
    seen = {route(s, "shop", "a@shop.example", f"r{i}@gmail.com").ip
            for i in range(40)}
    assert seen == {second}
    d = route(s, "shop", "a@shop.example", "r0@gmail.com")
    assert d.rule in (rule_names.SPF_REROUTE, "shared:shared")


def test_no_authorized_ip_defers_with_the_reason() -> None:
    s = snap({"shop.example": frozenset(NEW_POOL_IPS)})
    d = route(s, "shop", "news@shop.example")
    assert d.action is Action.DEFER and d.rule == rule_names.SPF_DEFER
    assert "SPF of shop.example does not authorize" in d.reason


def test_another_route_of_the_tenant_is_taken() -> None:
    """news (major-via-shared): Gmail goes shared; when SPF refuses the shared pool, its own
    IP (the route for other providers) carries the mail instead."""
    s = snap({"news.example": frozenset(NEW_POOL_IPS)})
    d = route(s, "news", "n@news.example")
    assert d.action is Action.ROUTE and d.ip == "127.0.0.22"
    assert d.rule == rule_names.SPF_REROUTE
    assert "does not authorize" in d.reason


def test_overflow_to_an_unauthorized_pool_waits_instead_of_breaking_the_cap() -> None:
    caps = {(WARM, "google"): Cap(3, f"IP {WARM} → google: warm-up stage 1, cap 3 a day")}
    counts = CapCounter(int(NOW // 86400))
    for _ in range(3):
        counts.add(WARM, None, None, "google")
    open_ = snap({}, caps)
    assert route(open_, "startup", "s@startup.example", counts=counts).ip in NEW_POOL_IPS
    guarded = snap({"startup.example": frozenset(NEW_POOL_IPS)}, caps)
    d = route(guarded, "startup", "s@startup.example", counts=counts)
    assert d.action is Action.DEFER and d.rule == rule_names.SPF_DEFER
    # under the cap the warming IP itself is fine
    assert route(guarded, "startup", "s@startup.example").ip == WARM


def test_other_sender_domains_and_an_empty_map_are_untouched() -> None:
    s = snap({"shop.example": frozenset(NEW_POOL_IPS)})
    assert route(s, "shop", "a@other.example").ip in NEW_POOL_IPS
    assert not snap({"shop.example": frozenset()}).spf_denied


def test_one_message_one_route_through_route_recipient() -> None:
    first, second = NEW_POOL_IPS
    s = snap({"shop.example": frozenset({first})})
    message: MessageRoute | None = None
    counts = CapCounter(int(NOW // 86400))
    for i in range(10):
        verdict = route_recipient(RouteRequest(f"r{i}@gmail.com", tenant="shop",
                                               sender="a@shop.example"), s, NOW, message,
                                  counts)
        message = verdict.message
        assert verdict.decision.ip == second
