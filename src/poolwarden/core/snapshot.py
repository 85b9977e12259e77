"""The immutable routing snapshot: everything ``decide()`` reads, precomputed once.

Built off the hot path from the inventory, the stored tier of each tenant and
the volume advice. Per tenant it resolves the plan and tier into routes (a
pool's usable IPs, or a fixed HOLD / REJECT / DEFER), and per route and
provider it prepares the ``Decision`` values, so a decision is a handful of
dict lookups. Routes that only depend on (plan, tier, pool) are shared between
tenants, which keeps 100,000 tenants cheap. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from poolwarden.core import rule_names
from poolwarden.core.caps import (
    EMPTY_PLAN,
    NO_LIMITS,
    OVERFLOW_DEFER,
    CapPlan,
    Limits,
    fold_restrictions,
)
from poolwarden.core.model import (
    EgressIp,
    Inventory,
    IpState,
    Plan,
    Pool,
    PoolKind,
    Tenant,
    Tier,
)
from poolwarden.core.providers import ProviderIndex
from poolwarden.core.shaping import (
    EMPTY_RESTRICTIONS,
    Restriction,
    RestrictionIndex,
    RestrictionKind,
)

SNAPSHOT_FORMAT = 1


class Action(StrEnum):
    ROUTE = "route"  # send from ``Decision.ip``
    HOLD = "hold"  # keep in the MTA's hold queue (suspended tenant)
    REJECT = "reject"  # refuse permanently (off-platform tenant)
    DEFER = "defer"  # try again later: the safe answer when we cannot decide


class TenantLookup(StrEnum):
    SASL = "sasl"
    SENDER_DOMAIN = "sender_domain"
    CLIENT_ADDRESS = "client_address"


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    tenant_lookup: tuple[TenantLookup, ...] = (TenantLookup.SASL, TenantLookup.SENDER_DOMAIN,
                                               TenantLookup.CLIENT_ADDRESS)
    unknown_tenant: Action = Action.DEFER
    off_platform: Action = Action.REJECT


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing answer and why: the action, the egress IP and pool, the rule and its inputs."""

    action: Action
    ip: str | None
    pool: str | None
    reason: str
    rule: str
    tier: Tier | None = None
    plan: Plan | None = None
    provider: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"action": self.action.value, "ip": self.ip, "pool": self.pool,
                "reason": self.reason, "rule": self.rule,
                "tier": self.tier.value if self.tier else None,
                "plan": self.plan.value if self.plan else None, "provider": self.provider}


@dataclass(frozen=True, slots=True)
class Route:
    """One way out: a pool's usable IPs with a prepared Decision per provider and IP,
    or a single fixed decision (hold, reject, defer)."""

    pool: str | None
    ips: tuple[str, ...]
    by_provider: Mapping[str, tuple[Decision, ...]]
    fixed: Decision | None = None


@dataclass(frozen=True, slots=True)
class TenantEntry:
    name: str
    tier: Tier
    plan: Plan
    fixed: Decision | None  # hold / reject, independent of the recipient
    route: Route  # the tenant's main route
    major_route: Route | None = None  # major-via-shared: the route for major providers
    private_domains: frozenset[str] = frozenset()
    private_route: Route | None = None  # private-routing: the route for listed domains
    # suspended tenants: the routes their held mail takes once released (tier risky, the
    # tier a suspension recovers to), so held mail carries a route and -H keeps it
    release: TenantEntry | None = None
    # where mail goes when the tenant's warm-up (or restricted) IP is at its cap today: the
    # shared pool for its tier (warmup_overflow = shared); None defers it
    overflow: Route | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    built_at: float
    providers: ProviderIndex
    tenants: Mapping[str, TenantEntry]
    by_sasl: Mapping[str, str]
    by_domain: Mapping[str, str]
    by_client: Mapping[str, str]
    settings: RoutingSettings
    ips: Mapping[str, EgressIp]
    pools: Mapping[str, Pool]
    format: int = SNAPSHOT_FORMAT
    notes: tuple[str, ...] = field(default=())
    # reaction-rule limits (core.shaping), honoured by decide()
    restrictions: RestrictionIndex = EMPTY_RESTRICTIONS
    # daily caps and tenant restrictions (core.caps); ``limited`` is False when there are
    # none, so decide() pays one attribute test for them
    limits: Limits = NO_LIMITS
    limited: bool = False
    # MAIL FROM domain -> egress IPs its SPF does not authorize (routing.
    # skip_spf_unauthorized); empty when the setting is off, so decide() pays one test
    spf_denied: Mapping[str, frozenset[str]] = field(default_factory=dict)


class _RouteFactory:
    """Builds routes and interns the shared ones."""

    def __init__(self, ips: Mapping[str, EgressIp], providers: ProviderIndex,
                 send_when_all_listed: bool = False) -> None:
        self._ips = ips
        self._provider_names = tuple(providers.providers)
        self._cache: dict[tuple[object, ...], Route] = {}
        self._send_listed = send_when_all_listed

    def all_listed(self, ips: tuple[str, ...]) -> bool:
        """Whether the only thing keeping mail off these IPs is a blocklisting."""
        known = [self._ips[a] for a in ips if a in self._ips]
        return bool(known) and all(
            ip.blocklisted and ip.state in (IpState.ACTIVE, IpState.WARMING) for ip in known)

    def listed_text(self, ips: tuple[str, ...]) -> str:
        return ", ".join(self._ips[a].unusable_reason() for a in ips if a in self._ips)

    def fixed(self, decision: Decision) -> Route:
        return Route(pool=decision.pool, ips=(), by_provider={}, fixed=decision)

    def to_ips(self, *, key: tuple[object, ...], pool: str | None, ips: tuple[str, ...],
               rule: str, reason: str, tier: Tier, plan: Plan) -> Route:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        usable = tuple(a for a in ips if a in self._ips and self._ips[a].usable)
        if not usable and self.all_listed(ips):
            why = self.listed_text(ips)
            if self._send_listed:  # the operator chose sending over waiting
                usable = tuple(a for a in ips if a in self._ips)
                reason = (f"{reason}; every IP is listed ({why}), sent anyway "
                          "(send_when_all_listed)")
                rule = rule_names.ALL_LISTED_SENT
            else:
                route = self.fixed(Decision(
                    Action.DEFER, None, pool, f"{reason}, but no usable IP: every IP is "
                    f"listed ({why}); deferring: the mail waits in the queue",
                    rule_names.ALL_LISTED, tier, plan))
                self._cache[key] = route
                return route
        if not usable:
            why = ", ".join(self._ips[a].unusable_reason() for a in ips if a in self._ips)
            route = self.fixed(Decision(
                Action.DEFER, None, pool, f"{reason}, but no usable IP ({why or 'none listed'})"
                "; deferring so nothing leaves from the wrong IP", rule_names.NO_USABLE_IP,
                tier, plan))
        else:
            by_provider = {
                name: tuple(Decision(Action.ROUTE, ip, pool, f"{reason}; provider {name}",
                                     rule, tier, plan, name) for ip in usable)
                for name in self._provider_names
            }
            route = Route(pool=pool, ips=usable, by_provider=by_provider)
        self._cache[key] = route
        return route


def build_snapshot(inventory: Inventory, *, tiers: Mapping[str, Tier],
                   dedicated_advised: Mapping[str, bool], settings: RoutingSettings,
                   version: int, built_at: float,
                   learned_providers: Mapping[str, str] | None = None,
                   restrictions: Iterable[Restriction] = (),
                   caps: CapPlan = EMPTY_PLAN,
                   listed: Mapping[str, str] | None = None,
                   send_when_all_listed: bool = False,
                   spf_denied: Mapping[str, frozenset[str]] | None = None) -> Snapshot:
    """Resolve every tenant's plan and tier into routes; fold in warm-up caps and restrictions.

    ``listed`` maps the egress IPs drained because a DNS blocklist lists them to what the
    lists said; the routes skip them (see ``_RouteFactory.to_ips`` for a route whose every
    IP is listed). ``spf_denied`` maps a tenant to the IPs its sending domains' SPF refuses
    (skipped with ``routing.skip_spf_unauthorized``)."""
    providers = ProviderIndex(inventory.providers, learned_providers)
    ips = {ip.address: ip for ip in inventory.ips}
    for address, why in (listed or {}).items():
        if address in ips:
            ips[address] = replace(ips[address], blocklisted=True, listed_on=why)
    pools = {pool.name: pool for pool in inventory.pools}
    shared_for: dict[Tier, Pool] = {}
    for pool in inventory.pools:
        if pool.kind is PoolKind.SHARED:
            for tier in pool.tiers:
                shared_for.setdefault(tier, pool)
    factory = _RouteFactory(ips, providers, send_when_all_listed)
    tenants: dict[str, TenantEntry] = {}
    by_sasl: dict[str, str] = {}
    by_domain: dict[str, str] = {}
    by_client: dict[str, str] = {}
    for tenant in inventory.tenants:
        tier = tiers.get(tenant.name, tenant.initial_tier)
        tenants[tenant.name] = _entry(tenant, tier, shared_for, factory, settings,
                                      dedicated_advised.get(tenant.name, False),
                                      caps.overflow.get(tenant.name) == OVERFLOW_DEFER)
        for user in tenant.sasl_usernames:
            by_sasl[user] = tenant.name
        for domain in tenant.domains:
            by_domain[domain.lower()] = tenant.name
        for address in tenant.client_addresses:
            by_client[address] = tenant.name
    index = RestrictionIndex.build(restrictions, now=built_at)
    limits = NO_LIMITS
    if index.all or caps.ip_caps or caps.domain_caps:
        limits = _limits(inventory, tenants, shared_for, factory, caps, index, pools)
    return Snapshot(version=version, built_at=built_at, providers=providers, tenants=tenants,
                    by_sasl=by_sasl, by_domain=by_domain, by_client=by_client,
                    settings=settings, ips=ips, pools=pools, restrictions=index,
                    limits=limits, limited=limits.any,
                    spf_denied={d: ips for d, ips in (spf_denied or {}).items() if ips})


def _limits(inventory: Inventory, tenants: dict[str, TenantEntry],
            shared_for: Mapping[Tier, Pool], factory: _RouteFactory, caps: CapPlan,
            index: RestrictionIndex, pools: Mapping[str, Pool]) -> Limits:
    """Give tenants on their own IPs an overflow route and build the REROUTE routes."""
    by_name = {t.name: t for t in inventory.tenants}
    for name, entry in list(tenants.items()):
        tenant = by_name[name]
        if (entry.fixed is not None or not tenant.dedicated_ips
                or caps.overflow.get(name) == OVERFLOW_DEFER):
            continue
        overflow = _shared(tenant, entry.tier, shared_for, factory,
                           f"plan {tenant.plan.value}, tier {entry.tier.value}: overflow")
        tenants[name] = replace(entry, overflow=overflow)
    routes: dict[tuple[str, str], object] = {}
    for r in index.all:
        if r.tenant is None or r.pool is None or r.tenant not in tenants:
            continue
        entry = tenants[r.tenant]
        pool = pools.get(r.pool)
        why = f"rerouted by reaction rule '{r.rule}': {r.why}"
        if pool is None:
            routes[(r.tenant, r.pool)] = factory.fixed(Decision(
                Action.DEFER, None, r.pool, f"{why}, but there is no pool '{r.pool}'; "
                "deferring", rule_names.restriction(RestrictionKind.REROUTE, r.rule),
                entry.tier, entry.plan))
            continue
        routes[(r.tenant, r.pool)] = factory.to_ips(
            key=("reroute", r.pool, r.rule, entry.tier, entry.plan), pool=pool.name,
            ips=pool.ips, rule=rule_names.restriction(RestrictionKind.REROUTE, r.rule),
            reason=f"{why} → pool '{pool.name}'", tier=entry.tier, plan=entry.plan)
    return fold_restrictions(caps, index.all, routes)


def _shared(tenant: Tenant, tier: Tier, shared_for: Mapping[Tier, Pool],
            factory: _RouteFactory, why: str) -> Route:
    pool = shared_for.get(tier)
    if pool is None:
        return factory.fixed(Decision(
            Action.DEFER, None, None, f"{why}, but no shared pool serves tier {tier.value}; "
            "deferring", rule_names.NO_POOL_FOR_TIER, tier, tenant.plan))
    return factory.to_ips(
        key=("shared", pool.name, tenant.plan, tier, why), pool=pool.name, ips=pool.ips,
        rule=rule_names.shared(tenant.plan.value),
        reason=f"{why} → shared pool '{pool.name}' (serves tier {tier.value})",
        tier=tier, plan=tenant.plan)


def _own(tenant: Tenant, tier: Tier, shared_for: Mapping[Tier, Pool], factory: _RouteFactory,
         why: str, defer: bool) -> Route:
    """The tenant's dedicated route; when blocklistings took every one of its IPs, the
    tenant's plan decides: overflow to the shared pool, or defer (``warmup_overflow``)."""
    route = _dedicated(tenant, tier, factory, why)
    if route.fixed is None or defer or not factory.all_listed(tenant.dedicated_ips):
        return route
    overflow = _shared(tenant, tier, shared_for, factory,
                       f"{why}, but its dedicated IP is listed "
                       f"({factory.listed_text(tenant.dedicated_ips)}): overflow")
    if overflow.fixed is not None:
        return overflow
    by_provider = {name: tuple(replace(d, rule=rule_names.LISTED_OVERFLOW) for d in choices)
                   for name, choices in overflow.by_provider.items()}
    return Route(pool=overflow.pool, ips=overflow.ips, by_provider=by_provider)


def _dedicated(tenant: Tenant, tier: Tier, factory: _RouteFactory, why: str) -> Route:
    return factory.to_ips(
        key=("dedicated", tenant.name, why), pool=f"dedicated:{tenant.name}",
        ips=tenant.dedicated_ips, rule=rule_names.dedicated(tenant.plan.value),
        reason=f"{why} → dedicated IP of {tenant.name}", tier=tier, plan=tenant.plan)


def _entry(tenant: Tenant, tier: Tier, shared_for: Mapping[Tier, Pool],
           factory: _RouteFactory, settings: RoutingSettings, advised: bool,
           defer: bool = False) -> TenantEntry:
    plan = tenant.plan
    name = tenant.name
    fixed: Decision | None = None
    if tier is Tier.SUSPENDED:
        fixed = Decision(Action.HOLD, None, None,
                         f"tenant {name} is suspended: mail is held, never sent from another IP",
                         rule_names.TIER_SUSPENDED, tier, plan)
    elif tier is Tier.OFF_PLATFORM:
        fixed = Decision(settings.off_platform, None, None,
                         f"tenant {name} is off the platform", rule_names.TIER_OFF_PLATFORM, tier,
                         plan)
    if fixed is not None:
        release = (_entry(tenant, Tier.RISKY, shared_for, factory, settings, advised, defer)
                   if tier is Tier.SUSPENDED else None)
        return TenantEntry(name, tier, plan, fixed, factory.fixed(fixed), release=release)
    plan_text = f"plan {plan.value}, tier {tier.value}"
    if plan is Plan.SHARED:
        return TenantEntry(name, tier, plan, None,
                           _shared(tenant, tier, shared_for, factory, plan_text))
    if plan is Plan.DEDICATED:
        return TenantEntry(name, tier, plan, None,
                           _own(tenant, tier, shared_for, factory, plan_text, defer))
    if plan is Plan.MAJOR_VIA_SHARED:
        return TenantEntry(
            name, tier, plan, None,
            route=_own(tenant, tier, shared_for, factory,
                       f"{plan_text}, recipient not at a major provider", defer),
            major_route=_shared(tenant, tier, shared_for, factory,
                                f"{plan_text}, recipient at a major provider"))
    if plan is Plan.PROVE_THEN_SHARE:
        if tier is Tier.GOOD:
            return TenantEntry(name, tier, plan, None, _shared(
                tenant, tier, shared_for, factory, f"{plan_text}: proven, graduated"))
        return TenantEntry(name, tier, plan, None, _own(
            tenant, tier, shared_for, factory, f"{plan_text}: not proven yet, stays on its own IP",
            defer))
    if plan is Plan.PRIVATE_ROUTING:
        return TenantEntry(
            name, tier, plan, None,
            route=_shared(tenant, tier, shared_for, factory,
                          f"{plan_text}, sending domain not listed for private routing"),
            private_domains=frozenset(d.lower() for d in tenant.private_domains),
            private_route=_own(tenant, tier, shared_for, factory,
                               f"{plan_text}, sending domain listed for private routing", defer))
    # auto: a dedicated IP only where the volume can earn it a reputation
    if advised and tenant.dedicated_ips:
        return TenantEntry(name, tier, plan, None, _own(
            tenant, tier, shared_for, factory, f"{plan_text}: volume advice says a dedicated IP",
            defer))
    why = ("volume advice says shared" if not advised
           else "dedicated advised but no dedicated IP assigned")
    return TenantEntry(name, tier, plan, None,
                       _shared(tenant, tier, shared_for, factory, f"{plan_text}: {why}"))

