"""The audit log, read only: there is no route that changes or deletes a row."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from poolwarden.http.access import API_PREFIX, Ctx, Rule, route
from poolwarden.http.models import AuditEntry
from poolwarden.services.queries.listings import audit_rows

router = APIRouter(prefix=API_PREFIX, tags=["audit"])


@route(router, "GET", "/audit", Rule.OPERATOR_READ, response_model=list[AuditEntry],
       summary="Audit rows (every write and every refused request), newest first")
def list_audit(
    ctx: Ctx,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=255)] = None,
    target: Annotated[str | None, Query(max_length=1024)] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return audit_rows(ctx, actor=actor, action=action, target=target, since=since, limit=limit)
