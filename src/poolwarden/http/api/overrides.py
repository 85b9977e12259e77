"""Operator overrides: pin a tenant to a tier with a reason, list pins, clear them.

Every write leaves one audit row with the state before and after. A tenant token
sees its own pin with ``pinned_by`` "operator" (``services.queries.tenant_view``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from poolwarden.http.access import (
    API_PREFIX,
    UNKNOWN_TENANT,
    Caller,
    Ctx,
    Rule,
    route,
    scoped_tenant,
)
from poolwarden.http.models import ClearIn, Move, Override, OverrideIn
from poolwarden.services.access import audit
from poolwarden.services.queries import reports, tenant_view
from poolwarden.services.queries.listings import override_rows, standing_dict

router = APIRouter(prefix=API_PREFIX, tags=["overrides"])


@route(router, "GET", "/overrides", Rule.TENANT_FILTER, response_model=list[Override],
       summary="Tenants pinned to a tier by an operator, with who and why")
def list_overrides(request: Request, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    rows = override_rows(ctx.engine(), scoped_tenant(ctx, request, who, None))
    return rows if who.is_operator else [tenant_view.standing(r) for r in rows]


@route(router, "POST", "/overrides", Rule.OPERATOR_WRITE, response_model=Move,
       status_code=201, summary="Pin a tenant to a tier (audited)")
def create_override(body: OverrideIn, ctx: Ctx, who: Caller) -> dict[str, Any]:
    engine = ctx.engine()
    if body.tenant not in engine.tenants:
        raise HTTPException(404, UNKNOWN_TENANT)
    now = ctx.now()
    before = standing_dict(body.tenant, engine.standings()[body.tenant])
    move = engine.override(body.tenant, body.tier, actor=who.name, why=body.reason, now=now,
                           source="api")
    after = standing_dict(body.tenant, ctx.store.standings()[body.tenant])
    audit.record(ctx.store, actor=who.name, source="api", action="override.set",
                 target=f"tenant:{body.tenant}", at=now, before=before, after=after)
    return reports.move_dict(move)


@route(router, "POST", "/overrides/{tenant}/clear", Rule.OPERATOR_WRITE,
       response_model=Override, summary="Remove a tenant's pin (audited)")
def clear_override(tenant: Annotated[str, Path(max_length=255)], body: ClearIn, ctx: Ctx,
                   who: Caller) -> dict[str, Any]:
    engine = ctx.engine()
    if tenant not in engine.tenants:
        raise HTTPException(404, UNKNOWN_TENANT)
    now = ctx.now()
    before = standing_dict(tenant, engine.standings()[tenant])
    if not before["pinned"]:
        raise HTTPException(409, "this tenant has no pin")
    engine.clear_override(tenant, actor=who.name, why=body.reason, now=now, source="api")
    after = standing_dict(tenant, engine.standings()[tenant])
    audit.record(ctx.store, actor=who.name, source="api", action="override.clear",
                 target=f"tenant:{tenant}", at=now, before=before, after=after)
    return after
