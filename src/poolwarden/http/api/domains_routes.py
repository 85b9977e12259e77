"""Sending domains: each tenant domain's roles, authentication findings (SPF per route,
DKIM, DMARC, alignment, tracking) and what DMARC aggregate reports say of it; and the
DMARC reports received (``services.domains``).

Isolation: a tenant's domains are ``tenant-path`` (a tenant token reads its own); the
list of received reports names every reporter and domain, so it is operators' only.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from poolwarden.http.access import API_PREFIX, UNKNOWN_TENANT, Caller, Ctx, Rule, route
from poolwarden.http.models import DmarcReportOut, DomainOut
from poolwarden.services.domains.view import domain_views

router = APIRouter(prefix=API_PREFIX, tags=["domains"])
TenantName = Annotated[str, Path(max_length=255, description="Tenant name.")]


@route(router, "GET", "/tenants/{tenant}/domains", Rule.TENANT_PATH,
       response_model=list[DomainOut],
       summary="The tenant's domains: roles, authentication per route, DMARC pass shares")
def tenant_domains(tenant: TenantName, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    if tenant not in ctx.engine().tenants:
        raise HTTPException(404, UNKNOWN_TENANT)
    return [v.as_dict() for v in domain_views(ctx.config, ctx.store, tenant=tenant)]


@route(router, "GET", "/dmarc/reports", Rule.OPERATOR_READ,
       response_model=list[DmarcReportOut],
       summary="DMARC aggregate reports received, newest first, with refusals and reasons")
def dmarc_reports(
    ctx: Ctx, who: Caller,
    status: Annotated[str | None, Query(pattern="^(stored|rejected|skipped)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [{**asdict(r), "warnings": list(r.warnings)}
            for r in ctx.store.dmarc_reports(status=status, limit=limit)]
