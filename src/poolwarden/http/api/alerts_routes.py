"""Recent alerts (``services.alerts.watcher`` records each one in the store with its numbers,
link and outcome per channel), filterable by kind, time, tenant and IP.

Isolation rule ``tenant-filter``: operators read every alert; a tenant token reads
only alerts about its own tenant and of a kind about it alone (tier moves,
suspensions, reaction rules: ``services.queries.tenant_view.TENANT_ALERT_KINDS``), with
operators named "operator", no per-channel outcome and no raw log lines. Alerts
about shared things (a bad neighbour's shares are aggregates over every tenant on
the IP; ingestion; the routing agent; IP warm-up) are operators' only. Naming
another tenant in the filter answers 404 like any tenant-filter list.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from poolwarden.http.access import API_PREFIX, Caller, Ctx, Rule, route, scoped_tenant
from poolwarden.http.models import AlertOut
from poolwarden.services.queries.listings import alert_rows

router = APIRouter(prefix=API_PREFIX, tags=["alerts"])


@route(router, "GET", "/alerts", Rule.TENANT_FILTER, response_model=list[AlertOut],
       summary="Recent alerts, newest first (a tenant token: those about its own tenant)")
def list_alerts(
    request: Request, ctx: Ctx, who: Caller,
    kind: Annotated[str | None, Query(max_length=64, description=(
        "tier_move, suspension, bad_neighbour, reaction, warmup_stall, ingest_lag, "
        "ingest_gap, agent_defer…"))] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="Epoch seconds.")] = None,
    tenant: Annotated[str | None, Query(max_length=255)] = None,
    ip: Annotated[str | None, Query(max_length=64, description="Egress IP address.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    tenant = scoped_tenant(ctx, request, who, tenant)
    return alert_rows(ctx, kind=kind, since=since, tenant=tenant, ip=ip, limit=limit,
                      viewer_tenant=None if who.is_operator else who.tenant)
