"""What each dashboard page shows, as plain dicts built from the engine and the snapshot.

The templates only lay these out. Numbers come from ``services.queries.reports`` and
``services.queries.reaction_report`` (the same read models as the CLI and the API) and
``series`` (the charts); this module adds the page-specific groupings: pools
with their tenants, tenants needing attention, the explanation of a tenant's
current tier, the reaction rules in force on a tenant or an IP, and the tenant
user's view of a tenant page (operators' names left out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from poolwarden.core.model import TIER_RANK, Tier
from poolwarden.core.reputation import Scope
from poolwarden.core.snapshot import Route, Snapshot, TenantEntry
from poolwarden.core.tiers import findings, proof
from poolwarden.http.web.series import daily_series
from poolwarden.services.queries import blocklists, reaction_report, reports, tenant_view
from poolwarden.services.reputation.engine import DAY, Engine

ATTENTION_TIERS = frozenset({Tier.RISKY, Tier.SUSPENDED, Tier.OFF_PLATFORM})
RECENT_MOVE_DAYS = 7  # a demotion this recent is still news on the overview


def _routes_of(entry: TenantEntry) -> Iterable[Route]:
    return (r for r in (entry.route, entry.major_route, entry.private_route) if r is not None)


def tenant_pools(entry: TenantEntry) -> list[str]:
    """The pools a tenant's mail leaves through now (fixed routes such as HOLD have none)."""
    return list(dict.fromkeys(r.pool for r in _routes_of(entry)
                              if r.pool is not None and r.fixed is None))


def overview(engine: Engine, snapshot: Snapshot, now: float, *,
             extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pools with their IPs and tenants, tier counts, tenants needing attention, reaction
    rules in force; ``extras`` carries the optional sections (held mail, alerts)."""
    standings = engine.standings()
    ips = {row["address"]: row for row in reports.ip_rows(engine, snapshot, now)}
    members: dict[str, list[str]] = {}
    for name, entry in snapshot.tenants.items():
        for pool in tenant_pools(entry):
            members.setdefault(pool, []).append(name)
    pools = [{
        "name": pool.name, "kind": pool.kind.value,
        "tiers": [t.value for t in sorted(pool.tiers, key=TIER_RANK.__getitem__)],
        "ips": [ips[a] for a in pool.ips if a in ips],
        "tenants": sorted(members.get(pool.name, [])),
    } for pool in snapshot.pools.values()]
    dedicated = [{
        "tenant": tenant.name, "plan": tenant.plan.value,
        "in_use": f"dedicated:{tenant.name}" in tenant_pools(snapshot.tenants[tenant.name]),
        "ips": [ips[a] for a in tenant.dedicated_ips if a in ips],
    } for tenant in engine.tenants.values() if tenant.dedicated_ips]
    counts = Counter(s.tier for s in standings.values())
    return {
        "blocklists": blocklists.overview(engine.store, limit=20),
        "pools": pools,
        "dedicated": dedicated,
        "tier_counts": [{"tier": t.value, "count": counts.get(t, 0)}
                        for t in sorted(TIER_RANK, key=TIER_RANK.__getitem__)],
        "attention": attention(engine, now),
        "restrictions": [_restriction(r) for r in snapshot.restrictions.all],
        "snapshot": {"version": snapshot.version, "built_at": snapshot.built_at},
        **(extras or {}),
    }


def _restriction(r: Any) -> dict[str, Any]:
    return {"rule": r.rule, "kind": r.kind.value, "provider": r.provider, "ip": r.ip,
            "tenant": r.tenant, "cap_factor": r.cap_factor, "pool": r.pool,
            "until": r.until, "why": r.why}


def attention(engine: Engine, now: float) -> list[dict[str, Any]]:
    """Tenants an operator should look at, worst tier first, each with why."""
    t = engine.thresholds
    rows: list[dict[str, Any]] = []
    recent = {m.tenant: m for m in reversed(engine.store.moves(limit=500))
              if m.at >= now - RECENT_MOVE_DAYS * DAY
              and TIER_RANK[m.after] > TIER_RANK[m.before]}
    for name, standing in engine.standings().items():
        why: list[str] = []
        if standing.tier in ATTENTION_TIERS:
            why.append(f"tier {standing.tier.value}")
        move = recent.get(name)
        if move is not None:
            why.append(f"{move.before.value} → {move.after.value}: {move.reason}")
        window = engine.metrics(Scope.TENANT, name, now=now, days=t.window_days)
        fired = [f for f in findings(window, t) if TIER_RANK[f.tier] > TIER_RANK[standing.tier]]
        if fired and standing.pinned:
            why.append("pinned by an operator, but " + "; ".join(f.text() for f in fired))
        if why:
            rows.append({"tenant": name, "tier": standing.tier.value,
                         "pinned": standing.pinned, "why": why})
    rows.sort(key=lambda r: (-TIER_RANK[Tier(r["tier"])], r["tenant"]))
    return rows


def tenant_page(engine: Engine, snapshot: Snapshot, name: str, now: float) -> dict[str, Any]:
    """Everything the tenant page shows; raises ``InputError`` for an unknown tenant."""
    detail = reports.tenant_detail(engine, snapshot, name, now)
    t = engine.thresholds
    window = engine.metrics(Scope.TENANT, name, now=now, days=t.window_days)
    proof_window = engine.metrics(Scope.TENANT, name, now=now, days=t.proof_window_days)
    fired = findings(window, t)
    proven, missing = proof(proof_window, t)
    detail["explanation"] = {
        "last_move": detail["moves"][0] if detail["moves"] else None,
        "findings": [{**f.as_dict(), "text": f.text()} for f in fired],
        "proven": proven,
        "proof_missing": missing,
    }
    detail["pools"] = tenant_pools(snapshot.tenants[name])
    detail["series"] = daily_series(engine, Scope.TENANT, name, now=now)
    detail["thresholds"] = t.as_dict()
    tenant = engine.tenants[name]
    detail["reactions"] = in_force(reaction_report.for_tenant(
        engine.store, name, tuple(tenant.dedicated_ips), now))
    return detail


def in_force(activations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The activations still limiting traffic (main phase or ramp-back), oldest first."""
    return sorted((a for a in activations if a["in_force"]), key=lambda a: a["started_at"])


def for_tenant_user(detail: dict[str, Any]) -> dict[str, Any]:
    """A tenant page as a tenant user sees it: ``services.queries.tenant_view`` (the API's tenant
    tokens see the same): operators only as "operator", explanations kept, reaction rules
    without their raw log lines."""
    return tenant_view.tenant_detail(detail)


def ip_page(engine: Engine, snapshot: Snapshot, address: str, now: float, *,
            warmup: Callable[[str], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Everything the IP page shows; raises ``InputError`` for an unknown IP."""
    detail = reports.ip_detail(engine, snapshot, address, now)
    detail["series"] = daily_series(engine, Scope.IP, address, now=now)
    detail["dedicated_to"] = next((t.name for t in engine.tenants.values()
                                   if address in t.dedicated_ips), None)
    detail["reactions"] = in_force(reaction_report.for_ip(engine.store, address, now))
    detail["warmup"] = warmup(address) if warmup is not None else None
    return detail
