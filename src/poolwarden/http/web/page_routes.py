"""The dashboard's read-only pages: overview, tenant, IP, audit log, and its static files.

GET never changes state. Operators see every page; a tenant user is sent from
the overview to its own tenant page and gets 404 for anything else.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from poolwarden.http.web import extras, pages
from poolwarden.http.web.assets import static_response
from poolwarden.http.web.common import (
    TIER_CHOICES,
    Ctx,
    base_context,
    log,
    not_found,
    see_other,
    segment,
    viewer_of,
)
from poolwarden.http.web.render import page
from poolwarden.services.access import audit
from poolwarden.services.domains.view import domain_views
from poolwarden.services.queries.held import HELD_STANDINGS

router = APIRouter(include_in_schema=False)
NOTICES = {"override": "Override recorded.", "cleared": "Pin cleared.",
           "suspended": "Tenant suspended: its mail is held from now on.",
           "released": "Held mail released to Postfix's active queue."}


@router.get("/")
def overview(request: Request, ctx: Ctx) -> Response:
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    if not viewer.operator:
        return see_other(f"/tenants/{segment(viewer.tenant or '')}")
    engine, now = ctx.engine(), ctx.now()
    data = pages.overview(engine, engine.snapshot(now), now, extras=extras.overview(ctx, now))
    return page("overview.html", {**base_context(viewer, session, ctx), "page": data})


# ``:path``: a tenant name may hold "/" (names only exclude whitespace and controls)
@router.get("/tenants/{name:path}")
def tenant(request: Request, ctx: Ctx, name: str, done: str = "") -> Response:
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    engine, now = ctx.engine(), ctx.now()
    if name not in engine.tenants or (not viewer.operator and viewer.tenant != name):
        if not viewer.operator:
            log.warning("dashboard: %s (tenant %s) asked for tenant %r", viewer.actor,
                        viewer.tenant, name[:64])
        return not_found(viewer, session)
    data = pages.tenant_page(engine, engine.snapshot(now), name, now)
    if not viewer.operator:
        data = pages.for_tenant_user(data)
    return page("tenant.html", {**base_context(viewer, session, ctx), "t": data,
                                "notice": NOTICES.get(done), "thresholds": data["thresholds"],
                                "tiers": TIER_CHOICES, "held": extras.held_for(ctx, name),
                                "held_standings": HELD_STANDINGS,
                                "domains": domain_views(ctx.config, ctx.store, tenant=name)})


@router.get("/ips/{address}")
def ip(request: Request, ctx: Ctx, address: str) -> Response:
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    engine, now = ctx.engine(), ctx.now()
    snapshot = engine.snapshot(now)
    if not viewer.operator or address not in snapshot.ips:
        return not_found(viewer, session)
    data = pages.ip_page(engine, snapshot, address, now,
                         warmup=extras.warmup_getter(engine, now))
    return page("ip.html", {**base_context(viewer, session, ctx), "ip": data})


@router.get("/audit")
def audit_list(request: Request, ctx: Ctx) -> Response:
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    if not viewer.operator:
        return not_found(viewer, session)
    tenants = {t.name for t in ctx.config.inventory.tenants}
    rows = [extras.audit_view(row, tenants) for row in audit.list_rows(ctx.store, limit=200)]
    return page("audit.html", {**base_context(viewer, session, ctx), "rows": rows})


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    return static_response(path)
