"""Tenants: tier, pool, plan, volume and rates per provider (with sample sizes and
Wilson bounds), advice on dedicated vs shared, and the history of moves.

A tenant token reads its own tenant through ``services.queries.tenant_view``: operators who
moved or pinned it appear as "operator" (as on the dashboard)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from poolwarden.http.access import API_PREFIX, UNKNOWN_TENANT, Caller, Ctx, Rule, route
from poolwarden.http.access import scoped_tenant as scope
from poolwarden.http.models import Move, TenantDetail, TenantRow
from poolwarden.services.queries import reaction_report, reports, tenant_view

router = APIRouter(prefix=API_PREFIX, tags=["tenants"])
TenantName = Annotated[str, Path(max_length=255, description="Tenant name.")]


def tenant_rows(ctx: Ctx, tenant: str | None = None) -> list[dict[str, Any]]:
    engine = ctx.engine()
    now = ctx.now()
    rows = reports.tenant_rows(engine, ctx.snapshot(), now)
    return [r for r in rows if tenant is None or r["name"] == tenant]


@route(router, "GET", "/tenants", Rule.TENANT_FILTER, response_model=list[TenantRow],
       summary="Every tenant (a tenant token: its own) with tier, pool, rates and advice")
def list_tenants(request: Request, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    return tenant_rows(ctx, scope(ctx, request, who, None))


def _known(ctx: Ctx, tenant: str) -> None:
    if tenant not in ctx.engine().tenants:
        raise HTTPException(404, UNKNOWN_TENANT)


@route(router, "GET", "/tenants/{tenant}", Rule.TENANT_PATH, response_model=TenantDetail,
       summary="One tenant: routes, metrics per provider, advice and its moves")
def get_tenant(tenant: TenantName, ctx: Ctx, who: Caller) -> dict[str, Any]:
    _known(ctx, tenant)
    engine, now = ctx.engine(), ctx.now()
    detail = reports.tenant_detail(engine, ctx.snapshot(), tenant, now)
    detail["reactions"] = reaction_report.for_tenant(
        ctx.store, tenant, engine.tenants[tenant].dedicated_ips, now)
    return detail if who.is_operator else tenant_view.tenant_detail(detail)


@route(router, "GET", "/tenants/{tenant}/moves", Rule.TENANT_PATH, response_model=list[Move],
       summary="The tenant's tier moves, newest first, each with its numbers and thresholds")
def tenant_moves(tenant: TenantName, ctx: Ctx, who: Caller,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    _known(ctx, tenant)
    moves = [reports.move_dict(m) for m in ctx.store.moves(tenant, limit=limit)]
    return moves if who.is_operator else [tenant_view.move(m) for m in moves]
