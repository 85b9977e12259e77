"""The routing decision itself: ``decide()`` for every plan and standing, the caps' rule
names, and ``route_recipient()`` keeping one message on one route (with its release route).

Pure: snapshots built from ``small_esp`` (shop shared, bank dedicated, news
major-via-shared, startup prove-then-share, law private-routing, big auto), no agent,
no Postfix. The agent's replies for the same cases are pinned in tests/services/routing.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.core import rule_names
from poolwarden.core.caps import Cap, CapCounter, CapPlan
from poolwarden.core.message import MessageRoute, Verdict, release_route, route_recipient
from poolwarden.core.model import Inventory, Plan, Tier
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.shaping import Restriction, RestrictionKind
from poolwarden.core.snapshot import Action, RoutingSettings, Snapshot, build_snapshot
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp

NOW = 20000 * 86400.0 + 3600
DAY = int(NOW // 86400)
GMAIL, YAHOO, SMALL = "alice@gmail.com", "bob@yahoo.com", "carol@smallbiz.example"
DEDICATED = {"bank": "127.0.0.21", "news": "127.0.0.22", "startup": "127.0.0.23",
             "law": "127.0.0.24", "big": "127.0.0.25"}
GOOD, NEW = set(GOOD_POOL_IPS), set(NEW_POOL_IPS)


def snap(tiers: dict[str, Tier] | None = None, *, advised: dict[str, bool] | None = None,
         inventory: Inventory | None = None, settings_: RoutingSettings | None = None,
         caps: CapPlan | None = None, restrictions: tuple[Restriction, ...] = (),
         version: int = 1) -> Snapshot:
    return build_snapshot(inventory or small_esp(), tiers=tiers or {},
                          dedicated_advised=advised or {},
                          settings=settings_ or RoutingSettings(), version=version,
                          built_at=NOW, caps=caps or CapPlan(), restrictions=restrictions)


def for_tenant(tenant: str, recipient: str, sender: str | None = None) -> RouteRequest:
    return RouteRequest(recipient=recipient, tenant=tenant, sender=sender)


# -- decide(): one table, one row per plan, tier and standing ---------------------------

# (id, tiers, advised, request, action, pool, ips the decision may use, rule)
ROWS = [
    ("shared, tier new", {}, {}, for_tenant("shop", GMAIL),
     Action.ROUTE, "shared-new", NEW, "shared:shared"),
    ("shared, tier good", {"shop": Tier.GOOD}, {}, for_tenant("shop", SMALL),
     Action.ROUTE, "shared-good", GOOD, "shared:shared"),
    ("shared, tier risky", {"shop": Tier.RISKY}, {}, for_tenant("shop", GMAIL),
     Action.ROUTE, "shared-new", NEW, "shared:shared"),
    ("dedicated, major provider", {"bank": Tier.GOOD}, {}, for_tenant("bank", GMAIL),
     Action.ROUTE, "dedicated:bank", {"127.0.0.21"}, "dedicated:dedicated"),
    ("dedicated, risky keeps its own IP", {"bank": Tier.RISKY}, {}, for_tenant("bank", SMALL),
     Action.ROUTE, "dedicated:bank", {"127.0.0.21"}, "dedicated:dedicated"),
    ("major-via-shared, major provider", {"news": Tier.GOOD}, {}, for_tenant("news", YAHOO),
     Action.ROUTE, "shared-good", GOOD, "major-via-shared:shared"),
    ("major-via-shared, other provider", {"news": Tier.GOOD}, {}, for_tenant("news", SMALL),
     Action.ROUTE, "dedicated:news", {"127.0.0.22"}, "major-via-shared:dedicated"),
    ("private-routing, listed domain", {}, {}, for_tenant("law", GMAIL, "a@law.example"),
     Action.ROUTE, "dedicated:law", {"127.0.0.24"}, "private-routing:dedicated"),
    ("private-routing, unlisted domain", {}, {},
     for_tenant("law", GMAIL, "a@lawblog.example"),
     Action.ROUTE, "shared-new", NEW, "private-routing:shared"),
    ("private-routing, no sender", {}, {}, for_tenant("law", SMALL),
     Action.ROUTE, "shared-new", NEW, "private-routing:shared"),
    ("prove-then-share, not proven", {}, {}, for_tenant("startup", GMAIL),
     Action.ROUTE, "dedicated:startup", {"127.0.0.23"}, "prove-then-share:dedicated"),
    ("prove-then-share, proven", {"startup": Tier.GOOD}, {}, for_tenant("startup", GMAIL),
     Action.ROUTE, "shared-good", GOOD, "prove-then-share:shared"),
    ("auto, advised dedicated", {}, {"big": True}, for_tenant("big", GMAIL),
     Action.ROUTE, "dedicated:big", {"127.0.0.25"}, "auto:dedicated"),
    ("auto, advised shared", {}, {"big": False}, for_tenant("big", GMAIL),
     Action.ROUTE, "shared-new", NEW, "auto:shared"),
    ("suspended", {"bank": Tier.SUSPENDED}, {}, for_tenant("bank", GMAIL),
     Action.HOLD, None, set(), rule_names.TIER_SUSPENDED),
    ("off-platform", {"shop": Tier.OFF_PLATFORM}, {}, for_tenant("shop", GMAIL),
     Action.REJECT, None, set(), rule_names.TIER_OFF_PLATFORM),
    ("unknown tenant", {}, {}, RouteRequest(recipient=GMAIL, sender="x@nobody.example"),
     Action.DEFER, None, set(), rule_names.UNKNOWN_TENANT),
    ("tenant named but unknown", {}, {}, for_tenant("ghost", GMAIL),
     Action.DEFER, None, set(), rule_names.UNKNOWN_TENANT),
    ("recipient without a domain", {}, {}, for_tenant("shop", "postmaster"),
     Action.DEFER, None, set(), rule_names.BAD_RECIPIENT),
]


@pytest.mark.parametrize(("tiers", "advised", "request_", "action", "pool", "ips", "rule"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_decide_table(tiers, advised, request_, action, pool, ips, rule):
    d = decide(request_, snap(tiers, advised=advised), NOW)
    assert (d.action, d.pool, d.rule) == (action, pool, rule)
    if action is Action.ROUTE:
        assert d.ip in ips and d.provider is not None
    else:
        assert d.ip is None
    assert d.reason  # every decision says why


def test_every_ip_of_a_shared_pool_is_used_and_the_choice_is_stable():
    s = snap()
    chosen = [decide(for_tenant("shop", f"u{i}@gmail.com"), s, NOW).ip for i in range(200)]
    assert set(chosen) == NEW
    assert chosen == [decide(for_tenant("shop", f"u{i}@gmail.com"), s, NOW).ip
                      for i in range(200)]
    seeded = [decide(for_tenant("shop", GMAIL), s, NOW, random.Random(5)).ip for _ in range(9)]
    assert seeded == [decide(for_tenant("shop", GMAIL), s, NOW, random.Random(5)).ip
                      for _ in range(9)]


def test_the_reasons_name_plan_tier_and_pool():
    d = decide(for_tenant("news", SMALL), snap({"news": Tier.GOOD}), NOW)
    assert "plan major-via-shared, tier good" in d.reason and "not at a major" in d.reason
    held = decide(for_tenant("bank", GMAIL), snap({"bank": Tier.SUSPENDED}), NOW)
    assert "bank is suspended" in held.reason and (held.tier, held.plan) == (
        Tier.SUSPENDED, Plan.DEDICATED)


def test_off_platform_and_unknown_answers_follow_the_settings():
    s = snap({"shop": Tier.OFF_PLATFORM},
             settings_=RoutingSettings(unknown_tenant=Action.REJECT, off_platform=Action.DEFER))
    assert decide(for_tenant("shop", GMAIL), s, NOW).action is Action.DEFER
    unknown = decide(RouteRequest(recipient=GMAIL, client_address="192.0.2.9"), s, NOW)
    assert unknown.action is Action.REJECT and unknown.ip is None


@pytest.mark.parametrize(("request_", "named"), [
    (RouteRequest(recipient=GMAIL, sasl_username="mallory", sender="a@bank.example"),
     "mallory"),
    (RouteRequest(recipient=GMAIL, sender="x@nobody.example"), "x@nobody.example"),
    (RouteRequest(recipient=GMAIL, client_address="192.0.2.9"), "192.0.2.9"),
    (RouteRequest(recipient=GMAIL), "nobody"),
])
def test_unknown_tenant_reason_names_what_the_request_called_itself(request_, named):
    d = decide(request_, snap(), NOW)
    assert d.reason == f"no tenant matches {named}"
    assert (d.action, d.rule, d.pool, d.tier) == (Action.DEFER, "unknown_tenant", None, None)


@pytest.mark.parametrize(("request_", "tenant_pool"), [
    (RouteRequest(recipient=SMALL, sasl_username="shop", sender="a@bank.example"),
     "shared-new"),  # SASL first, by default
    (RouteRequest(recipient=SMALL, sender="<A@Mail.Bank.Example.>"), "dedicated:bank"),
    (RouteRequest(recipient=SMALL, client_address="10.0.0.5"), "shared-new"),  # law
    (RouteRequest(recipient=SMALL, sender="a@nobody.example", client_address="10.0.0.5"),
     "shared-new"),  # the sender names nobody: on to the client address
])
def test_tenant_resolution(request_, tenant_pool):
    assert decide(request_, snap(), NOW).pool == tenant_pool


def test_tenant_lookup_order_is_a_setting():
    from poolwarden.core.snapshot import TenantLookup
    s = snap(settings_=RoutingSettings(tenant_lookup=(TenantLookup.SENDER_DOMAIN,
                                                      TenantLookup.SASL)))
    d = decide(RouteRequest(recipient=SMALL, sasl_username="shop", sender="a@bank.example"),
               s, NOW)
    assert d.pool == "dedicated:bank"


def test_blocklisted_ips_are_skipped_in_a_pool_and_a_listed_dedicated_ip_follows_the_plan():
    inv = small_esp()
    bad = {NEW_POOL_IPS[0], "127.0.0.21"}
    listed = {a: "spamhaus-zen: 127.0.0.2 SBL" for a in bad}
    s = snap(inventory=replace(inv, ips=tuple(replace(ip, blocklisted=ip.address in bad)
                                              for ip in inv.ips)))
    assert {decide(for_tenant("shop", f"u{i}@gmail.com"), s, NOW).ip
            for i in range(50)} == {NEW_POOL_IPS[1]}
    # the tenant's overflow setting is "shared": its mail leaves from the shared pool, and
    # the decision says why (never silently)
    d = decide(for_tenant("bank", GMAIL), s, NOW)
    assert (d.action, d.ip, d.rule) == (Action.ROUTE, NEW_POOL_IPS[1],
                                        rule_names.LISTED_OVERFLOW)
    assert "127.0.0.21 is blocklisted" in d.reason and "overflow" in d.reason
    # overflow "defer": the mail waits
    s = build_snapshot(inv, tiers={}, dedicated_advised={}, settings=RoutingSettings(),
                       version=1, built_at=NOW, listed=listed,
                       caps=CapPlan(overflow={"bank": "defer"}))
    d = decide(for_tenant("bank", GMAIL), s, NOW)
    assert (d.action, d.ip, d.rule) == (Action.DEFER, None, rule_names.ALL_LISTED)
    assert "127.0.0.21 is blocklisted (spamhaus-zen: 127.0.0.2 SBL)" in d.reason


def test_every_ip_of_a_pool_listed_defers_unless_the_operator_sends_anyway():
    inv = small_esp()
    listed = {a: "psbl: 127.0.0.2" for a in NEW_POOL_IPS}
    s = build_snapshot(inv, tiers={}, dedicated_advised={}, settings=RoutingSettings(),
                       version=1, built_at=NOW, listed=listed)
    d = decide(for_tenant("shop", GMAIL), s, NOW)
    assert (d.action, d.ip, d.rule) == (Action.DEFER, None, rule_names.ALL_LISTED)
    s = build_snapshot(inv, tiers={}, dedicated_advised={}, settings=RoutingSettings(),
                       version=1, built_at=NOW, listed=listed, send_when_all_listed=True)
    d = decide(for_tenant("shop", GMAIL), s, NOW)
    assert d.action is Action.ROUTE and d.ip in NEW_POOL_IPS
    assert d.rule == rule_names.ALL_LISTED_SENT and "sent anyway" in d.reason


# -- caps: the rule names a capped decision carries --------------------------------------

WARM = DEDICATED["startup"]


def counts(n: int, ip: str = WARM, provider: str = "google") -> CapCounter:
    c = CapCounter(DAY)
    for _ in range(n):
        c.add(ip, None, None, provider)
    return c


def capped(overflow: dict[str, str] | None = None, restrictions=()) -> Snapshot:
    plan = CapPlan(ip_caps={(WARM, "google"): Cap(2, f"IP {WARM} → google: warm-up, cap 2")},
                   full_caps={"google": 10, "yahoo": 10, "other": 10},
                   overflow=overflow or {})
    return snap(caps=plan, restrictions=restrictions)


def test_warm_up_cap_overflows_to_the_shared_pool_or_defers():
    under = decide(for_tenant("startup", GMAIL), capped(), NOW, counts=counts(1))
    assert (under.ip, under.rule) == (WARM, "prove-then-share:dedicated")
    over = decide(for_tenant("startup", GMAIL), capped(), NOW, counts=counts(2))
    assert over.action is Action.ROUTE and over.ip in NEW and over.pool == "shared-new"
    assert over.rule == rule_names.WARMUP_OVERFLOW == "warmup:overflow"
    assert "2 of 2 sent today" in over.reason
    deferred = decide(for_tenant("startup", GMAIL), capped({"startup": "defer"}), NOW,
                      counts=counts(2))
    assert (deferred.action, deferred.ip) == (Action.DEFER, None)
    assert deferred.rule == rule_names.WARMUP_DEFER == "warmup:defer"
    assert "warmup_overflow = defer" in deferred.reason


def test_a_reaction_rule_cap_keeps_its_own_name_when_it_overflows_or_defers():
    cut = Restriction(rule="gmail-421", provider="google", ip=WARM, tenant=None,
                      kind=RestrictionKind.CAP, until=NOW + 3600, why="421 4.7.28",
                      cap_factor=0.5)
    over = decide(for_tenant("startup", GMAIL), capped(restrictions=(cut,)), NOW,
                  counts=counts(1))  # the cap is cut to 1 of 2
    assert over.ip in NEW and over.rule == "restriction:cap:gmail-421"
    deferred = decide(for_tenant("startup", GMAIL),
                      capped({"startup": "defer"}, restrictions=(cut,)), NOW,
                      counts=counts(1))
    assert deferred.action is Action.DEFER and deferred.rule == "restriction:cap:gmail-421"
    # once the restriction lapses the warm-up cap is back, under its own names
    later = decide(for_tenant("startup", GMAIL), capped(restrictions=(cut,)), NOW + 7200,
                   counts=counts(1))
    assert later.ip == WARM


def test_rule_names_are_built_from_their_parts():
    assert rule_names.restriction(RestrictionKind.PAUSE, "r1") == "restriction:pause:r1"
    assert rule_names.CapRules.of_restriction(RestrictionKind.CAP, "r1") == (
        "restriction:cap:r1",) * 3
    assert rule_names.WARMUP_RULES == ("warmup:cap", "warmup:defer", "warmup:overflow")


# -- route_recipient(): one message, one route --------------------------------------------


def recipients(s: Snapshot, tenant_sender: str, addresses: list[str],
               counter: CapCounter | None = None, now: float = NOW,
               message: MessageRoute | None = None) -> tuple[list[Verdict], MessageRoute | None]:
    """Route the recipients of one message in order, as the agent does."""
    c = counter if counter is not None else CapCounter(DAY)
    out = []
    for address in addresses:
        v = route_recipient(RouteRequest(recipient=address, sender=tenant_sender), s, now,
                            message, c)
        message = v.message
        if v.count_ip is not None:
            c.add(v.count_ip, v.tenant, v.count_domain, v.count_provider or "")
        out.append(v)
    return out, message


def test_the_first_recipient_opens_the_message_and_the_same_pool_keeps_its_ip():
    s = snap()
    addresses = [f"u{i}@gmail.com" for i in range(20)] + [f"v{i}@yahoo.com" for i in range(5)]
    verdicts, message = recipients(s, "s@shop.example", addresses)
    assert message is not None and message.tenant == "shop" and message.version == 1
    assert message is verdicts[0].message and not message.held
    first = verdicts[0].decision.ip
    assert {v.decision.ip for v in verdicts} == {first} and not any(v.split for v in verdicts)
    assert all(v.message is message for v in verdicts)  # the message's state never changes
    # each recipient is counted at the message's IP, for its own provider
    assert [(v.count_ip, v.count_provider) for v in verdicts[-5:]] == [(first, "yahoo")] * 5
    # on its own, the hash would have spread the recipients over both IPs
    assert {decide(for_tenant("shop", a), s, NOW).ip for a in addresses} == NEW


def test_a_recipient_on_another_route_is_split_off_and_not_counted():
    s = snap({"news": Tier.GOOD})
    (first, other, again), message = recipients(
        s, "s@news.example", ["a@gmail.com", "b@smallbiz.example", "c@yahoo.com"])
    assert first.decision.ip in GOOD and not first.split
    assert other.split and other.decision.ip == DEDICATED["news"]  # what it would have taken
    assert (other.count_ip, other.message) == (None, message)
    assert again.decision is first.decision and not again.split


def test_a_new_snapshot_does_not_carry_the_ip_choice_over():
    s1, s2 = snap(version=1), snap(version=2)
    [v1], message = recipients(s1, "s@shop.example", ["a@gmail.com"])
    other = next(f"u{i}@gmail.com" for i in range(50)
                 if decide(for_tenant("shop", f"u{i}@gmail.com"), s2, NOW).ip
                 != v1.decision.ip)
    [v2], _ = recipients(s2, "s@shop.example", [other], message=message)
    assert v2.split  # same pool but another snapshot: the first IP may be gone from it


def test_the_message_keeps_its_ip_only_while_that_ip_has_room():
    s = capped()
    c = counts(1)
    [first], message = recipients(s, "s@startup.example", ["a@gmail.com"], c)
    assert first.decision.ip == WARM and c.ip_count(WARM, "google") == 2  # now at its cap
    [second], _ = recipients(s, "s@startup.example", ["b@gmail.com"], c, message=message)
    assert second.split and second.decision.ip in NEW  # overflowed: another route


def test_refusals_and_defers_inside_a_message_leave_it_alone():
    s = snap({"bank": Tier.OFF_PLATFORM})
    [routed], message = recipients(s, "s@shop.example", ["a@gmail.com"])
    [refused], after = recipients(s, "s@bank.example", ["b@gmail.com"], message=message)
    assert refused.decision.action is Action.REJECT and not refused.split
    assert after is message and refused.count_ip is None
    [bad], after = recipients(s, "s@shop.example", ["nodomain"], message=message)
    assert bad.decision.rule == rule_names.BAD_RECIPIENT and after is message


def test_an_unknown_tenant_gets_the_defer_and_no_state():
    [v], message = recipients(snap(), "x@nobody.example", ["a@gmail.com"])
    assert (v.tenant, v.split, message, v.count_ip) == (None, False, None, None)
    assert v.decision.action is Action.DEFER and v.decision.rule == "unknown_tenant"


def test_a_warming_sending_domain_is_counted_with_its_recipients():
    plan = CapPlan(domain_caps={("shop.example", "google"): Cap(100, "new domain")})
    [v], _ = recipients(snap(caps=plan), "<S@Shop.Example>", ["a@gmail.com"])
    assert (v.count_domain, v.count_provider) == ("shop.example", "google")
    [w], _ = recipients(snap(caps=plan), "s@shop.example", ["a@yahoo.com"])
    assert w.count_domain is None  # no cap for Yahoo: nothing to count against


# -- held mail and its release route --------------------------------------------------------


def test_held_message_carries_the_route_it_takes_once_released():
    s = snap({"shop": Tier.SUSPENDED})
    (first, second), message = recipients(s, "s@shop.example", ["a@gmail.com", "b@yahoo.com"])
    assert first.decision.action is Action.HOLD and not first.split
    assert message is not None and message.held
    release = release_route(message)
    assert release is not None and release.action is Action.ROUTE
    assert release.ip in NEW and release.pool == "shared-new"  # risky: where suspension ends
    assert second.decision.action is Action.HOLD and not second.split
    assert first.count_ip is None and second.count_ip is None  # held mail is not sent today


def test_held_recipients_with_another_release_route_are_split_off():
    s = snap({"news": Tier.SUSPENDED})
    (held, other), message = recipients(s, "s@news.example",
                                        ["a@gmail.com", "b@smallbiz.example"])
    assert held.decision.action is Action.HOLD
    assert message is not None and release_route(message).pool == "shared-new"
    assert other.split and other.decision.pool == "dedicated:news"  # its release route


def test_a_routed_recipient_in_a_held_message_is_split_and_a_hold_in_a_routed_one_holds():
    s = snap({"bank": Tier.SUSPENDED})
    [_], held = recipients(s, "s@bank.example", ["a@gmail.com"])
    [routed], _ = recipients(s, "s@shop.example", ["b@gmail.com"], message=held)
    assert routed.split and routed.count_ip is None
    [_], sent = recipients(s, "s@shop.example", ["c@gmail.com"])
    [hold], after = recipients(s, "s@bank.example", ["d@gmail.com"], message=sent)
    assert hold.decision.action is Action.HOLD and not hold.split and after is sent


def test_release_route_only_for_held_messages():
    assert release_route(None) is None
    [_], routed = recipients(snap(), "s@shop.example", ["a@gmail.com"])
    assert release_route(routed) is None
    inv = small_esp()  # a suspended tenant whose release route has no usable IP
    dead = replace(inv, ips=tuple(replace(ip, blocklisted=ip.address in NEW)
                                  for ip in inv.ips))
    [_], held = recipients(snap({"shop": Tier.SUSPENDED}, inventory=dead), "s@shop.example",
                           ["a@gmail.com"])
    assert held is not None and held.held and release_route(held) is None


# -- properties ---------------------------------------------------------------------------

TENANTS = ("shop", "bank", "news", "startup", "law", "big")
RECIPIENT_DOMAINS = ("gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com",
                     "smallbiz.example", "sub.gmail.com", "x.example")
ALL_IPS = (*GOOD_POOL_IPS, *NEW_POOL_IPS, *DEDICATED.values())

tiers_st = st.dictionaries(st.sampled_from(TENANTS), st.sampled_from(list(Tier)))
advised_st = st.dictionaries(st.sampled_from(TENANTS), st.booleans())
recipient_st = st.builds("{}@{}".format, st.from_regex(r"[a-z0-9.]{1,12}", fullmatch=True),
                         st.sampled_from(RECIPIENT_DOMAINS))
blocked_st = st.frozensets(st.sampled_from(ALL_IPS))


def allowed_ips(tenant: str) -> set[str]:
    """The IPs a tenant may ever leave from: its own, and the shared pools (any tier)."""
    own = {DEDICATED[tenant]} if tenant in DEDICATED else set()
    return own | GOOD | NEW


def shared_for(tier: Tier) -> set[str]:
    return GOOD if tier is Tier.GOOD else NEW


@settings(max_examples=150, deadline=None)
@given(tenant=st.sampled_from(TENANTS), tiers=tiers_st, advised=advised_st,
       recipient=recipient_st, sender_domain=st.sampled_from(
           ("law.example", "lawblog.example", "shop.example", "bank.example")),
       blocked=blocked_st)
def test_decide_never_leaves_from_an_ip_outside_the_tenants_pools(
        tenant, tiers, advised, recipient, sender_domain, blocked):
    inv = small_esp()
    inv = replace(inv, ips=tuple(replace(ip, blocklisted=ip.address in blocked)
                                 for ip in inv.ips))
    s = snap(tiers, advised=advised, inventory=inv)
    d = decide(for_tenant(tenant, recipient, f"a@{sender_domain}"), s, NOW)
    tier = tiers.get(tenant, Tier.NEW)
    if d.action is Action.ROUTE:
        assert d.ip is not None and d.ip not in blocked
        assert d.ip in (({DEDICATED.get(tenant, "")} - {""}) | shared_for(tier))
        assert d.ip in allowed_ips(tenant) and d.tier is tier
    else:
        assert d.ip is None
    if tier is Tier.SUSPENDED:
        assert d.action is Action.HOLD
    elif tier is Tier.OFF_PLATFORM:
        assert d.action is Action.REJECT
    else:
        assert d.action in (Action.ROUTE, Action.DEFER)
    assert d == decide(for_tenant(tenant, recipient, f"a@{sender_domain}"), s, NOW)


@settings(max_examples=120, deadline=None)
@given(tiers=tiers_st, senders=st.lists(st.sampled_from(TENANTS), min_size=1, max_size=4),
       addresses=st.lists(recipient_st, min_size=1, max_size=12), data=st.data())
def test_a_message_never_leaves_from_two_ips(tiers, senders, addresses, data):
    s = snap(tiers)
    c = CapCounter(DAY)
    message: MessageRoute | None = None
    sent: set[str] = set()
    for address in addresses:
        sender = f"s@{data.draw(st.sampled_from(senders))}.example"
        v = route_recipient(RouteRequest(recipient=address, sender=sender), s, NOW, message, c)
        if message is not None:
            assert v.message is message  # set by the first recipient, never changed after
        message = v.message
        if v.split:
            assert v.count_ip is None
            continue
        if v.decision.action is Action.ROUTE:
            assert v.count_ip == v.decision.ip and v.tenant is not None
            assert v.decision.ip in allowed_ips(v.tenant)
            sent.add(v.decision.ip)
            assert message is not None and not message.held
        else:
            assert v.count_ip is None
        assert len(sent) <= 1
