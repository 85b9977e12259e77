"""The decision function: which egress IP (or hold / reject / defer) for one recipient.

``decide(request, snapshot, now, rng)`` identifies the tenant (SASL user,
sender domain or client address, in the configured order, unless the caller
names it), groups the recipient by mailbox provider and picks the route the
snapshot prepared for the tenant's plan and tier. Deterministic: the IP within
a pool comes from ``rng`` when given, else from a stable hash of the recipient.
Whenever it cannot decide, it answers DEFER with the reason; rule names come
from ``core.rule_names``. One recipient at a time: ``core.message`` keeps the
recipients of one message on one route. Pure; this is the routing hot path,
so it only does dict lookups on the snapshot.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple, Protocol

from poolwarden.core import rule_names
from poolwarden.core.caps import OVERFLOW_DEFER, Cap, CapCounter
from poolwarden.core.rule_names import CapRules
from poolwarden.core.shaping import RestrictionKind
from poolwarden.core.snapshot import (
    Action,
    Decision,
    Route,
    Snapshot,
    TenantEntry,
    TenantLookup,
)

_NO_COUNTS = CapCounter()


class RandomSource(Protocol):
    def randrange(self, stop: int, /) -> int: ...


class RouteRequest(NamedTuple):
    """One recipient to route (a NamedTuple: built on every request of the hot path)."""

    recipient: str
    tenant: str | None = None  # when the caller already knows it (CLI, tests)
    sender: str | None = None
    sasl_username: str | None = None
    client_address: str | None = None
    mx_hosts: tuple[str, ...] = ()


def domain_of(address: str | None) -> str:
    """The lower-cased domain of an address (``<a@B.example.>`` → ``b.example``), or ""."""
    if not address:
        return ""
    _, at, domain = address.rpartition("@")
    if not at:
        return ""
    return domain.strip().strip(">").lower().rstrip(".")


def resolve_tenant(request: RouteRequest, snapshot: Snapshot) -> str | None:
    """The tenant a request belongs to, or None when nothing identifies one."""
    if request.tenant is not None:
        return request.tenant if request.tenant in snapshot.tenants else None
    for method in snapshot.settings.tenant_lookup:
        if method is TenantLookup.SASL and request.sasl_username:
            found = snapshot.by_sasl.get(request.sasl_username)
            if found is None:
                # an authenticated user we do not know must not borrow another tenant's
                # identity through the sender domain it puts in MAIL FROM
                return None
        elif method is TenantLookup.SENDER_DOMAIN and request.sender:
            found = _by_sender_domain(domain_of(request.sender), snapshot)
        elif method is TenantLookup.CLIENT_ADDRESS and request.client_address:
            found = snapshot.by_client.get(request.client_address)
        else:
            continue
        if found is not None:
            return found
    return None


def _by_sender_domain(domain: str, snapshot: Snapshot) -> str | None:
    by_domain = snapshot.by_domain
    while domain:
        found = by_domain.get(domain)
        if found is not None:
            return found
        _, _, domain = domain.partition(".")
    return None


def unknown_tenant(request: RouteRequest, snapshot: Snapshot) -> Decision:
    """The answer for a request no tenant matches (the snapshot's ``unknown_tenant`` action,
    DEFER unless configured otherwise), naming what the request called itself."""
    named = (request.tenant or request.sasl_username or request.sender
             or request.client_address or "nobody")
    return Decision(snapshot.settings.unknown_tenant, None, None,
                    f"no tenant matches {named}", rule_names.UNKNOWN_TENANT)


def decide(request: RouteRequest, snapshot: Snapshot, now: float,
           rng: RandomSource | None = None, counts: CapCounter | None = None) -> Decision:
    """Route one recipient of one message; ``counts`` are today's routed recipients
    (the agent's counter) that daily caps are checked against (none: zero)."""
    tenant = resolve_tenant(request, snapshot)
    if tenant is None:
        return unknown_tenant(request, snapshot)
    return decide_for(snapshot.tenants[tenant], request, snapshot, rng, counts, now)


def decide_for(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot,
               rng: RandomSource | None = None, counts: CapCounter | None = None,
               now: float = 0.0) -> Decision:
    """Route one recipient for an already identified tenant."""
    decision = _decide_for(entry, request, snapshot, rng, counts, now)
    if snapshot.spf_denied and decision.ip is not None:
        denied = snapshot.spf_denied.get(domain_of(request.sender))
        if denied and decision.ip in denied:
            return _spf_fallback(entry, request, snapshot, decision, denied,
                                 counts or _NO_COUNTS, now)
    return decision


def _spf_fallback(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot,
                  decision: Decision, denied: frozenset[str], counts: CapCounter,
                  now: float) -> Decision:
    """``decision`` leaves from an IP the sender domain's SPF does not authorize: another
    IP of the same route, else of the tenant's other routes (overflow last), else DEFER.
    Never the unauthorized IP (under DMARC p=reject that mail would be refused), never an
    IP at its cap, and mail already overflowing stays on the overflow route."""
    domain = domain_of(request.sender)
    provider = decision.provider or ""
    why = f"SPF of {domain} does not authorize {decision.ip}"
    overflow = entry.overflow
    if overflow is not None and decision.pool == overflow.pool != entry.route.pool:
        routes = [overflow]  # the main route is at its cap: that is why it overflowed
    else:
        routes = [r for r in (entry.route, entry.major_route, entry.private_route, overflow)
                  if r is not None and r.fixed is None]
        routes.sort(key=lambda r: r.pool != decision.pool)  # the same route's IPs first
    ip_caps = snapshot.limits.ip_caps
    for route in routes:
        choices = route.by_provider.get(provider, ())
        start = _index(request, len(choices), None) if choices else 0
        for step in range(len(choices)):
            other = choices[(start + step) % len(choices)]
            ip = other.ip or ""
            if ip and ip not in denied and _exhausted(
                    ip_caps.get((ip, provider)), counts.ips.get((ip, provider), 0),
                    now) is None:
                return Decision(Action.ROUTE, other.ip, other.pool,
                                f"{why}, skipped → {other.reason}", rule_names.SPF_REROUTE,
                                entry.tier, entry.plan, provider)
    return Decision(Action.DEFER, None, decision.pool,
                    f"{why}, nor any other IP of the tenant's routes; deferred, the mail "
                    "stays queued (it would fail SPF)", rule_names.SPF_DEFER, entry.tier,
                    entry.plan, provider)


def _decide_for(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot,
                rng: RandomSource | None, counts: CapCounter | None,
                now: float) -> Decision:
    if entry.fixed is not None:
        return entry.fixed
    recipient_domain = domain_of(request.recipient)
    if not recipient_domain:
        return Decision(Action.DEFER, None, None,
                        f"recipient {request.recipient!r} has no domain", rule_names.BAD_RECIPIENT,
                        entry.tier, entry.plan)
    provider = snapshot.providers.for_domain(recipient_domain, request.mx_hosts)
    route: Route = entry.route
    if entry.major_route is not None and snapshot.providers.is_major(provider):
        route = entry.major_route
    elif entry.private_route is not None:
        sender_domain = domain_of(request.sender)
        if sender_domain and sender_domain in entry.private_domains:
            route = entry.private_route
    if snapshot.limited:
        return _limited(entry, request, snapshot, route, provider, rng,
                        counts or _NO_COUNTS, now)
    if route.fixed is not None:
        return route.fixed
    choices = route.by_provider[provider]
    if len(choices) == 1:
        return choices[0]
    if rng is not None:
        return choices[rng.randrange(len(choices))]
    return choices[zlib.crc32(request.recipient.encode()) % len(choices)]


def _index(request: RouteRequest, size: int, rng: RandomSource | None) -> int:
    if size == 1:
        return 0
    if rng is not None:
        return rng.randrange(size)
    return zlib.crc32(request.recipient.encode()) % size


def _exhausted(cap: Cap | None, count: int, now: float) -> Cap | None:
    """The cap in force when ``count`` has reached it, else None."""
    if cap is None:
        return None
    live = cap.at(now)
    return live if live is not None and count >= live.limit else None


def _limited(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot, route: Route,
             provider: str, rng: RandomSource | None, counts: CapCounter,
             now: float) -> Decision:
    """The decision under daily caps and reaction-rule restrictions (core.caps)."""
    limits = snapshot.limits
    key = (entry.name, provider)
    for rule in limits.tenant_rules.get(key, ()):
        r = rule.restriction
        if r.until <= now:
            continue
        if r.kind is RestrictionKind.PAUSE:
            return Decision(Action.DEFER, None, route.pool,
                            f"{entry.name} → {provider} paused by reaction rule '{r.rule}': "
                            f"{r.why}; deferred, the mail stays queued",
                            rule_names.restriction(r.kind, r.rule), entry.tier, entry.plan,
                            provider)
        if r.kind is RestrictionKind.REROUTE and isinstance(rule.route, Route):
            route = rule.route
            break
    if route.fixed is not None:
        return route.fixed
    choices = route.by_provider[provider]
    start = _index(request, len(choices), rng)
    decision = choices[start]
    cap = _exhausted(limits.tenant_caps.get(key), counts.tenants.get(key, 0), now)
    if cap is not None:  # the cap is on the tenant: no other route would be under it
        return Decision(Action.DEFER, None, route.pool,
                        f"{entry.name} → {provider}: {cap.why}: "
                        f"{counts.tenants.get(key, 0):,} of {cap.limit:,} sent today; "
                        "deferred, the mail stays queued", cap.rules.deferred, entry.tier,
                        entry.plan, provider)
    if limits.domain_caps:
        domain = domain_of(request.sender)
        count = counts.domains.get((domain, provider), 0)
        cap = _exhausted(limits.domain_caps.get((domain, provider)), count, now)
        if cap is not None:
            return _overflow(entry, route, provider, snapshot, counts, now, request, rng,
                             f"{cap.why}: {count:,} of {cap.limit:,} sent today", cap.rules)
    ip_caps = limits.ip_caps
    if not ip_caps:
        return decision
    count = counts.ips.get((decision.ip or "", provider), 0)
    cap = _exhausted(ip_caps.get((decision.ip or "", provider)), count, now)
    if cap is None:
        return decision
    for step in range(1, len(choices)):  # the route's other IPs first
        other = choices[(start + step) % len(choices)]
        ip = other.ip or ""
        if _exhausted(ip_caps.get((ip, provider)), counts.ips.get((ip, provider), 0),
                      now) is None:
            return other
    return _overflow(entry, route, provider, snapshot, counts, now, request, rng,
                     f"{cap.why}: {count:,} of {cap.limit:,} sent today", cap.rules)


def _overflow(entry: TenantEntry, route: Route, provider: str, snapshot: Snapshot,
              counts: CapCounter, now: float, request: RouteRequest,
              rng: RandomSource | None, why: str, rules: CapRules) -> Decision:
    """A capped route's mail: to the tenant's overflow route, else DEFER (fail safe)."""
    setting = snapshot.limits.overflow.get(entry.name, "shared")
    target = entry.overflow
    if setting == OVERFLOW_DEFER or target is None:
        return Decision(Action.DEFER, None, route.pool,
                        f"{why}; warmup_overflow = {setting}: deferred, the mail stays queued",
                        rules.deferred, entry.tier, entry.plan, provider)
    if target.fixed is not None or target.pool == route.pool:
        return Decision(Action.DEFER, None, route.pool,
                        f"{why}; no other route to overflow to: deferred, the mail stays "
                        "queued", rules.deferred, entry.tier, entry.plan, provider)
    choices = target.by_provider[provider]
    start = _index(request, len(choices), rng)
    ip_caps = snapshot.limits.ip_caps
    for step in range(len(choices)):
        other = choices[(start + step) % len(choices)]
        ip = other.ip or ""
        if _exhausted(ip_caps.get((ip, provider)), counts.ips.get((ip, provider), 0),
                      now) is None:
            return Decision(Action.ROUTE, other.ip, other.pool,
                            f"{why} → overflow (warmup_overflow = shared): {other.reason}",
                            rules.overflowed, entry.tier, entry.plan, provider)
    return Decision(Action.DEFER, None, target.pool,
                    f"{why}, and every IP of the overflow pool '{target.pool}' is at its cap "
                    "too: deferred, the mail stays queued",
                    rules.deferred, entry.tier, entry.plan, provider)
