"""Recent routing decisions (filterable) and event summaries from the day counters."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from poolwarden.core.reputation import ALL_PROVIDERS, COUNT_FIELDS, Counts, Scope
from poolwarden.http.access import API_PREFIX, Caller, Ctx, Rule, route, scoped_tenant
from poolwarden.http.models import Decision, SummaryRow
from poolwarden.services.reputation.engine import day_of

router = APIRouter(prefix=API_PREFIX, tags=["decisions and events"])
SCAN_LIMIT = 10_000  # decision rows read to apply the action/since filters


def decision_rows(ctx: Ctx, *, tenant: str | None, action: str | None, since: float | None,
                  limit: int) -> list[dict[str, Any]]:
    wanted = action.upper() if action else None
    scan = limit if wanted is None and since is None else SCAN_LIMIT
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


@route(router, "GET", "/decisions", Rule.TENANT_FILTER, response_model=list[Decision],
       summary="Recent routing decisions, newest first")
def list_decisions(
    request: Request, ctx: Ctx, who: Caller,
    tenant: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64,
                                        description="FILTER, HOLD, REJECT, DEFER_IF_PERMIT…")]
    = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="Epoch seconds.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    tenant = scoped_tenant(ctx, request, who, tenant)
    return decision_rows(ctx, tenant=tenant, action=action, since=since, limit=limit)


class By(StrEnum):
    TENANT = "tenant"
    IP = "ip"
    PROVIDER = "provider"
    DAY = "day"


def _day_text(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86400, dt.UTC).date().isoformat()


def summary_rows(ctx: Ctx, *, by: By, tenant: str | None, days: int) -> list[dict[str, Any]]:
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


@route(router, "GET", "/summaries", Rule.TENANT_FILTER, response_model=list[SummaryRow],
       summary="Event counts per tenant, IP, provider or day")
def summaries(
    request: Request, ctx: Ctx, who: Caller,
    by: Annotated[By, Query(description="What to sum over.")] = By.TENANT,
    tenant: Annotated[str | None, Query(max_length=255)] = None,
    days: Annotated[int, Query(ge=1, le=400)] = 30,
) -> list[dict[str, Any]]:
    tenant = scoped_tenant(ctx, request, who, tenant)
    return summary_rows(ctx, by=by, tenant=tenant, days=days)
