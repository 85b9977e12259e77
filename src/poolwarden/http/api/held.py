"""Held mail: how many messages are held per tenant, and releasing them.

Counts come from the decision log (HOLD decisions) and, when a Postfix
configuration directory is configured, from ``postqueue -j`` (the hold
queue, each message attributed by the decision log, else by sender domain,
exactly as ``poolwarden hold release`` does: ``services.queries.held``). Release
runs ``postsuper -H`` (keeps the route the agent stored with the message) and
only for a tenant that may send again; it is audited. ``queued`` is the
dashboard's too, so both surfaces release the same way.

Why ``-H`` and never ``-r``, even for long holds (docs/testing.md A1 suggests ``-r``
against ``maximal_queue_lifetime``): measured on the real Postfix lab, ``-r``
sends the message back through pickup and cleanup, which drop the FILTER
(content_filter) record the agent set at END-OF-MESSAGE, and pickup never asks
the policy service again; the message is then deferred as "no poolwarden route"
for good (``tests/http/test_release_requeue_postfix.py``, docs/design-notes.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from poolwarden.adapters.postqueue import PostfixToolError, release_from_hold
from poolwarden.http.access import (
    API_PREFIX,
    UNKNOWN_TENANT,
    Caller,
    Ctx,
    Rule,
    route,
    scoped_tenant,
)
from poolwarden.http.models import Held, ReleaseIn, ReleaseOut
from poolwarden.services.access import audit
from poolwarden.services.queries import held

router = APIRouter(prefix=API_PREFIX, tags=["held mail"])


@route(router, "GET", "/held", Rule.TENANT_FILTER, response_model=list[Held],
       summary="Held mail per tenant (tenants with none are left out)")
def list_held(request: Request, ctx: Ctx, who: Caller) -> list[dict[str, Any]]:
    return held.node_held_rows(ctx, scoped_tenant(ctx, request, who, None))


@route(router, "POST", "/held/release", Rule.OPERATOR_WRITE, response_model=ReleaseOut,
       summary="Release a tenant's held mail once it may send again (audited)")
def release_held(body: ReleaseIn, ctx: Ctx, who: Caller) -> dict[str, Any]:
    engine = ctx.engine()
    if body.tenant not in engine.tenants:
        raise HTTPException(404, UNKNOWN_TENANT)
    tier = engine.standings()[body.tenant].tier.value
    if tier in held.HELD_STANDINGS:
        raise HTTPException(409, f"the tenant is {tier}: its mail stays held until it may "
                            "send again")
    in_queue = held.node_hold_queue(ctx)
    if in_queue is None:
        raise HTTPException(503, "no Postfix to release from (policyd.postfix_config_dir)")
    mine = in_queue.queue_ids(body.tenant)
    if mine and not body.dry_run:
        try:
            release_from_hold(ctx.postfix_config_dir, mine)
        except PostfixToolError:
            raise HTTPException(503, "postsuper failed; nothing was released") from None
        audit.record(ctx.store, actor=who.name, source="api", action="held.release",
                     target=f"tenant:{body.tenant}", at=ctx.now(),
                     before={"held": len(mine)}, after={"released": mine})
    return {"tenant": body.tenant, "released": 0 if body.dry_run else len(mine),
            "queue_ids": mine, "dry_run": body.dry_run}
