"""The REST API (``/api/v1``): one router assembled from one module per resource.

Every route is declared with ``access.route`` and so carries an access rule.
"""

from __future__ import annotations

from fastapi import APIRouter

from poolwarden.http.api import (
    alerts_routes,
    audit_routes,
    blocklists_routes,
    decisions,
    domains_routes,
    held,
    ips,
    overrides,
    tenants,
)

router = APIRouter()
for module in (tenants, ips, decisions, overrides, held, alerts_routes, audit_routes,
               blocklists_routes, domains_routes):
    router.include_router(module.router)
