"""DNS blocklists: what is listed now and the history of listings and delistings, with
what each list said and what poolwarden did (operators only: listings of shared IPs
carry other tenants' consequences)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from poolwarden.http.access import API_PREFIX, Ctx, Rule, route
from poolwarden.http.models import Listings
from poolwarden.services.queries import blocklists

router = APIRouter(prefix=API_PREFIX, tags=["blocklists"])


@route(router, "GET", "/blocklists", Rule.OPERATOR_READ, response_model=Listings,
       summary="Listings in force and their history (newest first)")
def list_blocklists(ctx: Ctx, target: Annotated[str | None, Query(
        max_length=255, description="Only this IP or domain.")] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    if target is not None:
        return blocklists.for_ip(ctx.store, target, limit=limit)
    return blocklists.overview(ctx.store, limit=limit)
