"""Daily caps in decide(): warm-up caps per provider, overflow per tenant, restrictions."""

from __future__ import annotations

from poolwarden.core.caps import Cap, CapCounter, CapPlan
from poolwarden.core.model import Tier
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.shaping import Restriction, RestrictionKind
from poolwarden.core.snapshot import Action, RoutingSettings, build_snapshot
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp

NOW = 20000 * 86400.0 + 3600
WARM = "127.0.0.23"  # startup's dedicated IP (prove-then-share), warming in small_esp
GMAIL, YAHOO, SMALL = "a@gmail.com", "b@yahoo.com", "c@smallbiz.example"


def snap(caps=None, restrictions=(), tiers=None, overflow=None):
    plan = CapPlan(ip_caps=caps or {}, overflow=overflow or {},
                   full_caps={"google": 1000, "yahoo": 1000, "other": 1000},
                   domain_caps={})
    return build_snapshot(small_esp(), tiers=tiers or {}, dedicated_advised={},
                          settings=RoutingSettings(), version=1, built_at=NOW,
                          caps=plan, restrictions=restrictions)


def route(snapshot, tenant, rcpt, counts=None, now=NOW, sender=None):
    return decide(RouteRequest(recipient=rcpt, tenant=tenant, sender=sender), snapshot, now,
                  counts=counts)


def counter(**ips: int) -> CapCounter:
    c = CapCounter(int(NOW // 86400))
    for key, n in ips.items():
        ip_key, provider = key.rsplit("__", 1)
        for _ in range(n):
            c.add(ip_key.replace("_", "."), None, None, provider)
    return c


WARM_CAPS = {(WARM, "google"): Cap(3, f"IP {WARM} → google: warm-up stage 1, cap 3 a day"),
             (WARM, "yahoo"): Cap(5, f"IP {WARM} → yahoo: warm-up stage 1, cap 5 a day")}


def test_under_the_cap_the_warming_ip_sends():
    s = snap(WARM_CAPS)
    assert s.limited
    c = counter(**{"127_0_0_23__google": 2})
    d = route(s, "startup", GMAIL, c)
    assert d.action is Action.ROUTE and d.ip == WARM


def test_at_the_cap_mail_overflows_to_the_shared_pool_for_the_tier():
    s = snap(WARM_CAPS)
    c = counter(**{"127_0_0_23__google": 3})
    d = route(s, "startup", GMAIL, c)
    assert d.action is Action.ROUTE and d.ip in NEW_POOL_IPS and d.pool == "shared-new"
    assert d.rule == "warmup:overflow"
    assert "3 of 3 sent today" in d.reason and "warmup_overflow = shared" in d.reason
    # other providers are unaffected: Yahoo has its own cap and count
    assert route(s, "startup", YAHOO, c).ip == WARM
    assert route(s, "startup", SMALL, c).ip == WARM  # no cap for "other" here


def test_overflow_follows_the_tier():
    s = snap(WARM_CAPS, tiers={"startup": Tier.RISKY})
    d = route(s, "startup", GMAIL, counter(**{"127_0_0_23__google": 3}))
    assert d.ip in NEW_POOL_IPS  # shared-new serves risky
    s = snap({("127.0.0.21", "google"): Cap(1, "cap 1")}, tiers={"bank": Tier.GOOD})
    d = route(s, "bank", GMAIL, counter(**{"127_0_0_21__google": 1}))
    assert d.ip in GOOD_POOL_IPS and d.pool == "shared-good"


def test_defer_setting_keeps_the_mail_queued():
    s = snap(WARM_CAPS, overflow={"startup": "defer"})
    d = route(s, "startup", GMAIL, counter(**{"127_0_0_23__google": 3}))
    assert d.action is Action.DEFER and d.ip is None and d.rule == "warmup:defer"
    assert "warmup_overflow = defer" in d.reason and "3 of 3" in d.reason
    assert route(s, "startup", YAHOO, counter(**{"127_0_0_23__google": 3})).ip == WARM


def test_a_capped_shared_ip_gives_way_to_the_pool_s_other_ips_then_defers():
    caps = {(ip, "google"): Cap(1, f"{ip} cap 1") for ip in NEW_POOL_IPS}
    s = snap(caps)
    one = counter(**{"127_0_0_13__google": 1})
    for i in range(20):
        d = route(s, "shop", f"u{i}@gmail.com", one)
        assert d.ip == "127.0.0.14"
    both = counter(**{"127_0_0_13__google": 1, "127_0_0_14__google": 1})
    d = route(s, "shop", GMAIL, both)
    assert d.action is Action.DEFER  # a shared tenant has nowhere else to go


def test_overflow_pool_full_too_defers():
    caps = {**WARM_CAPS, **{(ip, "google"): Cap(0, "full") for ip in NEW_POOL_IPS}}
    d = route(snap(caps), "startup", GMAIL, counter(**{"127_0_0_23__google": 3}))
    assert d.action is Action.DEFER and "every IP of the overflow pool" in d.reason


def test_no_counts_means_nothing_sent_yet():
    assert route(snap(WARM_CAPS), "startup", GMAIL).ip == WARM


def _r(kind, *, ip=None, tenant=None, provider="google", factor=1.0, pool=None,
       until=NOW + 600):
    return Restriction(rule="gmail-421", provider=provider, ip=ip, tenant=tenant, kind=kind,
                       cap_factor=factor, pool=pool, until=until,
                       why="3 × 421 4.7.28 in 10 min ≥ 3")


def test_pause_ip_provider_overflows_like_an_exhausted_cap():
    s = snap(restrictions=[_r(RestrictionKind.PAUSE, ip="127.0.0.21")])
    d = route(s, "bank", GMAIL)
    assert d.ip in NEW_POOL_IPS and d.rule == "restriction:pause:gmail-421"
    assert "paused by reaction rule 'gmail-421'" in d.reason and "421 4.7.28" in d.reason
    assert route(s, "bank", YAHOO).ip == "127.0.0.21"  # only that provider
    s = snap(restrictions=[_r(RestrictionKind.PAUSE, ip="127.0.0.21")],
             overflow={"bank": "defer"})
    assert route(s, "bank", GMAIL).action is Action.DEFER
    # the pause lifts at ``until`` without a new snapshot
    assert route(s, "bank", GMAIL, now=NOW + 601).ip == "127.0.0.21"


def test_cap_restriction_scales_the_warmup_cap_or_the_default():
    s = snap(WARM_CAPS, restrictions=[_r(RestrictionKind.CAP, ip=WARM, factor=0.5)])
    cap = s.limits.ip_caps[(WARM, "google")]
    assert cap.limit == 1 and cap.after is not None and cap.after.limit == 3
    assert route(s, "startup", GMAIL, counter(**{"127_0_0_23__google": 1})).ip in NEW_POOL_IPS
    assert route(s, "startup", GMAIL, counter(**{"127_0_0_23__google": 1}),
                 now=NOW + 601).ip == WARM  # ramped back to the warm-up cap
    s = snap(restrictions=[_r(RestrictionKind.CAP, ip="127.0.0.21", factor=0.25)])
    assert s.limits.ip_caps[("127.0.0.21", "google")].limit == 250  # of the default 1000
    # the tightest of two restrictions wins
    s = snap(restrictions=[_r(RestrictionKind.CAP, ip="127.0.0.21", factor=0.5),
                           _r(RestrictionKind.CAP, ip="127.0.0.21", factor=0.1)])
    assert s.limits.ip_caps[("127.0.0.21", "google")].limit == 100


def test_reroute_tenant_provider_to_the_named_pool():
    s = snap(restrictions=[_r(RestrictionKind.REROUTE, tenant="bank", pool="shared-good")])
    d = route(s, "bank", GMAIL)
    assert d.ip in GOOD_POOL_IPS and d.pool == "shared-good"
    assert d.rule == "restriction:reroute:gmail-421"
    assert route(s, "bank", YAHOO).ip == "127.0.0.21"
    assert route(s, "bank", GMAIL, now=NOW + 601).ip == "127.0.0.21"
    s = snap(restrictions=[_r(RestrictionKind.REROUTE, tenant="bank", pool="nope")])
    d = route(s, "bank", GMAIL)
    assert d.action is Action.DEFER and "no pool 'nope'" in d.reason


def test_tenant_pause_defers_that_tenant_only():
    s = snap(restrictions=[_r(RestrictionKind.PAUSE, tenant="shop")])
    assert route(s, "shop", GMAIL).action is Action.DEFER
    assert route(s, "shop", SMALL).action is Action.ROUTE
    assert route(s, "bank", GMAIL).action is Action.ROUTE


def test_expired_restrictions_are_dropped_at_build():
    s = snap(restrictions=[_r(RestrictionKind.PAUSE, ip="127.0.0.21", until=NOW - 1)])
    assert not s.limited and s.restrictions.all == ()


def test_counter_rolls_over_at_the_utc_day_and_keeps_unflushed_rows():
    c = CapCounter(10)
    c.add("1.2.3.4", "t", None, "google")
    c.roll(11)
    assert c.ip_count("1.2.3.4", "google") == 0
    c.add("1.2.3.4", "t", None, "google")
    batches = c.take_pending()
    assert [(d, rows[("ip", "1.2.3.4", "google")]) for d, rows in batches] == [(10, 1), (11, 1)]
    c.merge(11, {("ip", "1.2.3.4", "google"): 7})  # another node's count was higher
    assert c.ip_count("1.2.3.4", "google") == 7


def test_tenant_cap_defers_that_tenant_s_mail_to_the_provider_over_it():
    s = snap(restrictions=[_r(RestrictionKind.CAP, tenant="shop", factor=0.002)])
    assert s.limits.tenant_caps[("shop", "google")].limit == 2  # 0.2 % of the default 1000
    c = CapCounter(int(NOW // 86400))
    c.add("127.0.0.13", "shop", None, "google")
    assert route(s, "shop", GMAIL, c).action is Action.ROUTE
    c.add("127.0.0.14", "shop", None, "google")
    d = route(s, "shop", GMAIL, c)
    assert d.action is Action.DEFER and "2 of 2 sent today" in d.reason
    assert d.rule == "restriction:cap:gmail-421"
    assert route(s, "shop", YAHOO, c).action is Action.ROUTE
