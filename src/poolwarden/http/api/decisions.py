"""Recent routing decisions (filterable) and event summaries from the day counters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from poolwarden.http.access import API_PREFIX, Caller, Ctx, Rule, route, scoped_tenant
from poolwarden.http.models import Decision, SummaryRow
from poolwarden.services.queries.listings import By, decision_rows, summary_rows

router = APIRouter(prefix=API_PREFIX, tags=["decisions and events"])


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
