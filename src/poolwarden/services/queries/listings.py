"""The lists both surfaces show: pools, decisions, event summaries, overrides, alerts and
audit rows, as JSON-ready dicts.

The API's routes return them and the CLI's read commands print them (``--json`` gives
the same data as the route), so the two can never drift. Access control is the
surfaces' job: these take the tenant filter they were given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from enum import StrEnum
from typing import Any

from poolwarden.core.model import TenantStanding
from poolwarden.core.reputation import ALL_PROVIDERS, COUNT_FIELDS, Counts, Scope
from poolwarden.core.snapshot import Snapshot
from poolwarden.services.access import audit
from poolwarden.services.queries import tenant_view
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.reputation.engine import Engine, day_of

DECISION_SCAN = 10_000  # decision rows read to apply the action/since filters
ALERT_SCAN = 5_000  # alert rows read when a filter is applied here rather than in the store


def restriction_dicts(snapshot: Snapshot, ips: set[str] | None = None) -> list[dict[str, Any]]:
    return [{k: (v.value if hasattr(v, "value") else v) for k, v in asdict(r).items()}
            for r in snapshot.restrictions.all if ips is None or r.ip in ips]


def pool_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    riders: dict[str, list[str]] = {}
    for name, entry in snapshot.tenants.items():
        for route_ in (entry.route, entry.major_route, entry.private_route):
            if route_ is not None and route_.pool:
                riders.setdefault(route_.pool, [])
                if name not in riders[route_.pool]:
                    riders[route_.pool].append(name)
    return [{"name": p.name, "kind": p.kind.value,
             "tiers": sorted(t.value for t in p.tiers), "ips": list(p.ips),
             "tenants": sorted(riders.get(p.name, [])),
             "restrictions": restriction_dicts(snapshot, set(p.ips))}
            for p in snapshot.pools.values()]


def decision_rows(ctx: NodeContext, *, tenant: str | None, action: str | None, since: float | None,
                  limit: int) -> list[dict[str, Any]]:
    wanted = action.upper() if action else None
    scan = limit if wanted is None and since is None else DECISION_SCAN
    out = []
    for row in ctx.store.decisions(tenant=tenant, limit=scan):
        if since is not None and row.at < since:
            break  # newest first: nothing older can match
        if wanted is not None and row.action.split(" ", 1)[0].upper() != wanted:
            continue
        out.append(asdict(row))
        if len(out) >= limit:
            break
    return out


class By(StrEnum):
    TENANT = "tenant"
    IP = "ip"
    PROVIDER = "provider"
    DAY = "day"


def _day_text(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86400, dt.UTC).date().isoformat()


def summary_rows(ctx: NodeContext, *, by: By, tenant: str | None,
                 days: int) -> list[dict[str, Any]]:
    """Counts summed per tenant, IP, provider or day over the last ``days`` days.
    With a tenant, only that tenant's counters are read (its share of each IP)."""
    since = day_of(ctx.now()) - days + 1
    sums: dict[str, Counts] = {}
    for row in ctx.store.counters(since_day=since):
        if by is By.IP:
            if tenant is None:
                if row.scope is not Scope.IP or row.provider != ALL_PROVIDERS:
                    continue
                key = row.scope_id
            else:
                ip, _, owner = row.scope_id.partition("|")
                if (row.scope is not Scope.IP_TENANT or owner != tenant
                        or row.provider != ALL_PROVIDERS):
                    continue
                key = ip
        else:
            if row.scope is not Scope.TENANT or (tenant is not None and row.scope_id != tenant):
                continue
            if by is By.PROVIDER:
                if row.provider == ALL_PROVIDERS:
                    continue
                key = row.provider
            elif row.provider != ALL_PROVIDERS:
                continue
            else:
                key = row.scope_id if by is By.TENANT else _day_text(row.day)
        sums.setdefault(key, Counts()).add(row.counts)
    return [{"key": key, **dict(zip(COUNT_FIELDS, counts.as_tuple(), strict=True)),
             "volume": counts.volume} for key, counts in sorted(sums.items())]


def standing_dict(tenant: str, standing: TenantStanding) -> dict[str, Any]:
    return {"tenant": tenant, "tier": standing.tier.value, "since": standing.since,
            "pinned": standing.pinned, "pinned_by": standing.pinned_by,
            "pinned_why": standing.pinned_why}


def override_rows(engine: Engine, tenant: str | None = None) -> list[dict[str, Any]]:
    return [standing_dict(name, s) for name, s in sorted(engine.standings().items())
            if s.pinned and (tenant is None or name == tenant)]


def alert_rows(ctx: NodeContext, *, kind: str | None = None, since: float | None = None,
               tenant: str | None = None, ip: str | None = None, limit: int = 100,
               viewer_tenant: str | None = None) -> list[dict[str, Any]]:
    """Alerts newest first, as the API and ``poolwarden alerts`` list them; with
    ``viewer_tenant``, only what that tenant may read, as ``tenant_view`` shows it."""
    filtered_here = ip is not None or viewer_tenant is not None
    out: list[dict[str, Any]] = []
    for row in ctx.store.alerts(since=since, kind=kind, tenant=tenant,
                     limit=ALERT_SCAN if filtered_here else limit):
        if ip is not None and row.ip != ip:
            continue
        found = asdict(row)
        if viewer_tenant is not None:
            if not tenant_view.alert_visible(found, viewer_tenant):
                continue
            found = {**tenant_view.alert(found), "outcome": None}
        out.append(found)
        if len(out) >= limit:
            break
    return out


def audit_rows(ctx: NodeContext, *, actor: str | None, action: str | None, target: str | None,
               since: float | None, limit: int) -> list[dict[str, Any]]:
    return [audit.as_dict(r) for r in audit.list_rows(ctx.store, actor=actor, action=action,
                                                      target=target, since=since,
                                                      limit=limit)]
