"""Daily caps in the routing decision: warm-up caps, reaction-rule limits, overflow.

The snapshot carries a ``CapPlan`` folded into ``Limits`` (dicts keyed by
(ip, provider), (sending domain, provider) and (tenant, provider)); the agent
owns a ``CapCounter`` with today's (UTC) routed recipients per key, and passes
it to ``decide()``. ``apply_limits`` is what ``decide()`` calls when the
snapshot has any limit at all: it honours tenant PAUSE / REROUTE, then the
domain, tenant and IP caps, trying the route's other IPs and then the
tenant's overflow (the shared pool for its tier, or DEFER by the tenant's
``warmup_overflow``). Pure; the counter is the only mutable value and only
the agent writes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from poolwarden.core.rule_names import WARMUP_RULES, CapRules
from poolwarden.core.shaping import Restriction, RestrictionKind

OVERFLOW_SHARED = "shared"
OVERFLOW_DEFER = "defer"
INF = math.inf


@dataclass(frozen=True, slots=True)
class Cap:
    """A daily limit on one key, why it is there, and what applies once it lapses."""

    limit: int
    why: str  # "<ip> → google: warm-up stage 1 of 'sparkpost' (day 1), 200 a day"
    rules: CapRules = WARMUP_RULES  # the Decision rules when this cap turns mail away
    until: float = INF  # restriction-made caps lapse; warm-up caps last the day
    after: Cap | None = None

    def at(self, now: float) -> Cap | None:
        cap: Cap | None = self
        while cap is not None and cap.until <= now:
            cap = cap.after
        return cap


@dataclass(frozen=True, slots=True)
class CapPlan:
    """Today's warm-up caps and the per-tenant overflow setting, as the engine worked them out.

    ``full_caps`` is each provider's daily cap of a warmed address (the last stage
    of the default IP schedule): the base a CAP restriction cuts when the IP has
    no warm-up cap.
    """

    ip_caps: Mapping[tuple[str, str], Cap] = field(default_factory=dict)
    domain_caps: Mapping[tuple[str, str], Cap] = field(default_factory=dict)
    full_caps: Mapping[str, int] = field(default_factory=dict)
    overflow: Mapping[str, str] = field(default_factory=dict)  # tenant -> shared | defer


EMPTY_PLAN = CapPlan()


@dataclass(frozen=True, slots=True)
class TenantRule:
    """A tenant-scope PAUSE or REROUTE (the route is built by the snapshot)."""

    restriction: Restriction
    route: object | None = None  # snapshot.Route for REROUTE; None for PAUSE


@dataclass(frozen=True, slots=True)
class Limits:
    """Everything ``apply_limits`` reads, keyed for dict lookups."""

    ip_caps: Mapping[tuple[str, str], Cap] = field(default_factory=dict)
    domain_caps: Mapping[tuple[str, str], Cap] = field(default_factory=dict)
    tenant_caps: Mapping[tuple[str, str], Cap] = field(default_factory=dict)
    tenant_rules: Mapping[tuple[str, str], tuple[TenantRule, ...]] = field(
        default_factory=dict)
    overflow: Mapping[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.ip_caps or self.domain_caps or self.tenant_caps or self.tenant_rules)


NO_LIMITS = Limits()


def _restricted(base: Cap | None, rs: Iterable[Restriction], full: int | None) -> Cap | None:
    """``base`` under the PAUSE / CAP restrictions ``rs`` (the tightest wins)."""
    candidates: list[Cap] = []
    for r in rs:
        if r.kind is RestrictionKind.PAUSE:
            cap = Cap(0, f"paused by reaction rule '{r.rule}' until {r.until:.0f}: {r.why}",
                      CapRules.of_restriction(r.kind, r.rule), r.until, base)
        elif r.kind is RestrictionKind.CAP:
            normal = base.limit if base is not None else full
            if normal is None:
                continue
            limit = max(0, math.floor(normal * max(0.0, r.cap_factor)))
            cap = Cap(limit, f"cap cut to {r.cap_factor:.0%} of {normal:,} by reaction rule "
                      f"'{r.rule}' until {r.until:.0f}: {r.why}",
                      CapRules.of_restriction(r.kind, r.rule), r.until, base)
        else:
            continue
        candidates.append(cap)
    return _chain(candidates, base)


def _chain(caps: list[Cap], base: Cap | None) -> Cap | None:
    """The tightest cap, then (once it lapses) the tightest of those still running, ...,
    then ``base``: a reaction rule's pause followed by its ramp-back caps (×0.25 until t2,
    ×0.5 until t3) steps through them without a new snapshot."""
    if not caps:
        return base
    tightest = min(caps, key=lambda c: (c.limit, -c.until))
    return replace(tightest, after=_chain([c for c in caps if c.until > tightest.until], base))


def fold_restrictions(plan: CapPlan, restrictions: Iterable[Restriction],
                      tenant_routes: Mapping[tuple[str, str], object]) -> Limits:
    """The snapshot's limits: warm-up caps with the reaction rules' restrictions on top.

    ``tenant_routes`` maps (tenant, pool) to the snapshot Route a REROUTE uses (or
    a fixed DEFER route when the pool cannot take mail).
    """
    ip_caps = dict(plan.ip_caps)
    tenant_caps: dict[tuple[str, str], Cap] = {}
    rules: dict[tuple[str, str], list[TenantRule]] = {}
    by_ip: dict[tuple[str, str], list[Restriction]] = {}
    by_tenant: dict[tuple[str, str], list[Restriction]] = {}
    for r in restrictions:
        if r.ip is not None:
            by_ip.setdefault((r.ip, r.provider), []).append(r)
        elif r.tenant is not None:
            by_tenant.setdefault((r.tenant, r.provider), []).append(r)
    for key, rs in by_ip.items():
        cap = _restricted(ip_caps.get(key), rs, plan.full_caps.get(key[1]))
        if cap is not None:
            ip_caps[key] = cap
    for key, rs in by_tenant.items():
        cap = _restricted(None, [r for r in rs if r.kind is RestrictionKind.CAP],
                          plan.full_caps.get(key[1]))
        if cap is not None:
            tenant_caps[key] = cap
        for r in rs:
            if r.kind is RestrictionKind.PAUSE:
                rules.setdefault(key, []).append(TenantRule(r))
            elif r.kind is RestrictionKind.REROUTE:
                rules.setdefault(key, []).append(
                    TenantRule(r, tenant_routes.get((key[0], r.pool or ""))))
    return Limits(ip_caps=ip_caps, domain_caps=dict(plan.domain_caps), tenant_caps=tenant_caps,
                  tenant_rules={k: tuple(v) for k, v in rules.items()},
                  overflow=dict(plan.overflow))


class CapCounter:
    """Today's routed recipients per (ip, provider), (domain, provider), (tenant, provider).

    Owned by the routing agent: ``add`` after each decision that routes a
    recipient; ``pending`` is what has not been written to the store yet, and
    ``merge`` takes back the store's totals (every node's) after a flush. A new
    UTC day starts from zero.
    """

    __slots__ = ("day", "domains", "earlier", "ips", "pending", "tenants")

    def __init__(self, day: int = 0) -> None:
        self.day = day
        self.earlier: list[tuple[int, dict[tuple[str, str, str], int]]] = []
        self.ips: dict[tuple[str, str], int] = {}
        self.domains: dict[tuple[str, str], int] = {}
        self.tenants: dict[tuple[str, str], int] = {}
        self.pending: dict[tuple[str, str, str], int] = {}  # (scope, id, provider) -> n

    def roll(self, day: int) -> None:
        """Start ``day``: counts of an earlier day are dropped (their unflushed rows are kept
        for the store, under their own day)."""
        if day != self.day:
            if self.pending:
                self.earlier.append((self.day, self.pending))
                self.pending = {}
            self.day = day
            self.ips = {}
            self.domains = {}
            self.tenants = {}

    def add(self, ip: str, tenant: str | None, domain: str | None, provider: str) -> None:
        key = (ip, provider)
        self.ips[key] = self.ips.get(key, 0) + 1
        pending = self.pending
        pkey = ("ip", ip, provider)
        pending[pkey] = pending.get(pkey, 0) + 1
        if tenant is not None:
            tkey = (tenant, provider)
            self.tenants[tkey] = self.tenants.get(tkey, 0) + 1
            pkey = ("tenant", tenant, provider)
            pending[pkey] = pending.get(pkey, 0) + 1
        if domain:
            dkey = (domain, provider)
            self.domains[dkey] = self.domains.get(dkey, 0) + 1
            pkey = ("domain", domain, provider)
            pending[pkey] = pending.get(pkey, 0) + 1

    def take_pending(self) -> list[tuple[int, dict[tuple[str, str, str], int]]]:
        """The unflushed counts by day, handed to the flusher; cleared here."""
        taken = [*self.earlier, (self.day, self.pending)]
        self.earlier, self.pending = [], {}
        return [(day, rows) for day, rows in taken if rows]

    def restore_pending(self, day: int, rows: Mapping[tuple[str, str, str], int]) -> None:
        """Put back counts a failed flush did not store."""
        if day != self.day:
            self.earlier.append((day, dict(rows)))
            return
        for key, n in rows.items():
            self.pending[key] = self.pending.get(key, 0) + n

    def merge(self, day: int, totals: Mapping[tuple[str, str, str], int]) -> None:
        """Take the store's totals for ``day`` (all nodes), plus what is still pending here."""
        if day != self.day:
            return
        maps = {"ip": self.ips, "domain": self.domains, "tenant": self.tenants}
        fresh: dict[str, dict[tuple[str, str], int]] = {"ip": {}, "domain": {}, "tenant": {}}
        for (scope, scope_id, provider), n in totals.items():
            if scope in fresh:
                fresh[scope][(scope_id, provider)] = n
        for (scope, scope_id, provider), n in self.pending.items():
            if scope in fresh:
                key = (scope_id, provider)
                fresh[scope][key] = fresh[scope].get(key, 0) + n
        for scope, counts in fresh.items():
            # never lower a count this node already saw (a total read before our flush)
            current = maps[scope]
            for key, n in counts.items():
                if n > current.get(key, 0):
                    current[key] = n

    def ip_count(self, ip: str, provider: str) -> int:
        return self.ips.get((ip, provider), 0)
