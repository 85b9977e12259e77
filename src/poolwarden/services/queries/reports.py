"""Read models for operators: tenant and IP summaries as plain dicts.

Shared by the CLI (and later the API and dashboard) so every surface shows
the same numbers. Reads the engine; computes nothing the core does not.
"""

from __future__ import annotations

from typing import Any

from poolwarden.core.errors import InputError
from poolwarden.core.model import PoolKind
from poolwarden.core.reputation import Scope
from poolwarden.core.snapshot import Route, Snapshot, TenantEntry
from poolwarden.core.tiers import TierMove
from poolwarden.services.queries import blocklists
from poolwarden.services.reputation.engine import Engine


def _route_text(route: Route | None) -> str | None:
    if route is None:
        return None
    if route.fixed is not None:
        return f"{route.fixed.action.value}: {route.fixed.reason}"
    return f"{route.pool} ({', '.join(route.ips)})"


def _routes(entry: TenantEntry) -> dict[str, str | None]:
    routes: dict[str, str | None] = {"default": _route_text(entry.route)}
    if entry.major_route is not None:
        routes["major providers"] = _route_text(entry.major_route)
    if entry.private_route is not None:
        routes["private domains"] = _route_text(entry.private_route)
    return routes


def _pool_label(entry: TenantEntry) -> str:
    routes = [r for r in (entry.route, entry.major_route, entry.private_route) if r]
    labels = []
    for route in routes:
        if route.fixed is not None:
            labels.append(route.fixed.action.value.upper())
        elif route.pool:
            labels.append(route.pool)
    return " + ".join(dict.fromkeys(labels))


def move_dict(move: TierMove) -> dict[str, Any]:
    return {"tenant": move.tenant, "before": move.before.value, "after": move.after.value,
            "at": move.at, "rule": move.rule, "reason": move.reason, "actor": move.actor,
            "source": move.source, "pinned": move.pinned, "metrics": move.metrics,
            "thresholds": move.thresholds}


def tenant_rows(engine: Engine, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
    rows = []
    days = engine.thresholds.window_days
    for name, standing in engine.standings().items():
        tenant = engine.tenants[name]
        entry = snapshot.tenants[name]
        metrics = engine.metrics(Scope.TENANT, name, now=now, days=days)
        advice = engine.advice(name, now)
        rows.append({
            "name": name, "plan": tenant.plan.value, "tier": standing.tier.value,
            "pinned": standing.pinned, "pool": _pool_label(entry),
            "volume": metrics.volume, "window_days": days,
            "hard_bounce_rate": metrics.hard_bounce_rate.as_dict(),
            "complaint_rate": metrics.complaint_rate.as_dict(),
            "deferral_rate": metrics.deferral_rate.as_dict(),
            "trap_hits": metrics.trap_hits,
            "advice": advice.as_dict(),
        })
    return rows


def tenant_detail(engine: Engine, snapshot: Snapshot, name: str, now: float) -> dict[str, Any]:
    if name not in engine.tenants:
        raise InputError(f"unknown tenant '{name}'", field="tenant")
    tenant = engine.tenants[name]
    standing = engine.standings()[name]
    t = engine.thresholds
    per_provider = {
        provider: engine.metrics(Scope.TENANT, name, now=now, days=t.window_days,
                                 provider=provider).as_dict()
        for provider in engine.ledger.providers_of(Scope.TENANT, name)}
    return {
        "name": name, "plan": tenant.plan.value, "domains": list(tenant.domains),
        "dedicated_ips": list(tenant.dedicated_ips),
        "private_domains": list(tenant.private_domains),
        "tier": standing.tier.value, "since": standing.since, "pinned": standing.pinned,
        "pinned_by": standing.pinned_by, "pinned_why": standing.pinned_why,
        "routes": _routes(snapshot.tenants[name]),
        "window": engine.metrics(Scope.TENANT, name, now=now, days=t.window_days).as_dict(),
        "proof_window": engine.metrics(Scope.TENANT, name, now=now,
                                       days=t.proof_window_days).as_dict(),
        "per_provider": per_provider,
        "advice": engine.advice(name, now).as_dict(),
        "moves": [move_dict(m) for m in engine.store.moves(name)],
        "blocklists": blocklists.for_tenant(engine.store, tenant.domains,
                                            _sending_ips(snapshot, snapshot.tenants[name],
                                                         tenant.dedicated_ips)),
    }


def _sending_ips(snapshot: Snapshot, entry: TenantEntry, own: tuple[str, ...]) -> list[str]:
    """The IPs a tenant's mail may leave from: its own and those of the pools its routes
    use (listed IPs included, which the routes themselves skip)."""
    ips = list(own)
    for route in (entry.route, entry.major_route, entry.private_route, entry.overflow):
        pool = snapshot.pools.get(route.pool or "") if route is not None else None
        if pool is not None:
            ips += [a for a in pool.ips if a not in ips]
    return ips


def _pools_of(snapshot: Snapshot, address: str) -> list[str]:
    return [p.name for p in snapshot.pools.values() if address in p.ips]


def ip_rows(engine: Engine, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
    owners = {ip: t.name for t in engine.tenants.values() for ip in t.dedicated_ips}
    listed = blocklists.listed_on(engine.store)
    rows = []
    for address, ip in snapshot.ips.items():
        metrics = engine.metrics(Scope.IP, address, now=now, days=engine.thresholds.window_days)
        rows.append({
            "address": address, "helo": ip.helo, "state": ip.state.value,
            "blocklisted": ip.blocklisted, "pools": _pools_of(snapshot, address),
            "dedicated_to": owners.get(address), "volume": metrics.volume,
            "hard_bounce_rate": metrics.hard_bounce_rate.as_dict(),
            "complaint_rate": metrics.complaint_rate.as_dict(),
            "trap_hits": metrics.trap_hits, "listed_on": listed.get(address, ""),
        })
    return rows


def ip_detail(engine: Engine, snapshot: Snapshot, address: str, now: float) -> dict[str, Any]:
    ip = snapshot.ips.get(address)
    if ip is None:
        raise InputError(f"unknown IP '{address}'", field="address")
    pools = _pools_of(snapshot, address)
    shared = any(snapshot.pools[p].kind is PoolKind.SHARED for p in pools)
    t = engine.thresholds
    return {
        "address": address, "helo": ip.helo, "state": ip.state.value,
        "blocklisted": ip.blocklisted, "pools": pools, "shared": shared,
        "window": engine.metrics(Scope.IP, address, now=now, days=t.window_days).as_dict(),
        "per_provider": {
            provider: engine.metrics(Scope.IP, address, now=now, days=t.window_days,
                                     provider=provider).as_dict()
            for provider in engine.ledger.providers_of(Scope.IP, address)},
        "neighbours": [n.as_dict() for n in engine.neighbours(address, now)],
        # stage, today's cap and count per provider; None when the IP is not warming
        "warmup": engine.warmup().ip_detail(address, now),
        "blocklists": blocklists.for_ip(engine.store, address),
    }
