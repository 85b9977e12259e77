"""The dashboard's release-hold form: release a tenant's mail from Postfix's hold queue.

The same rules as the API's ``POST /api/v1/held/release`` (whose helpers it
uses): only operator-write users, only through ``common.write_gate`` (so a
forged request is refused before Postfix is asked anything), never while the
tenant is suspended or off-platform (its mail must stay held), ``postsuper -H``
on the queue ids attributed to the tenant (the route the agent stored with
each message stays), and one audit row (source "dashboard") per release.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from poolwarden.adapters.postqueue import PostfixToolError, release_from_hold
from poolwarden.http.web.common import Ctx, FormText, log, refused, see_other, segment, write_gate
from poolwarden.services.access import audit
from poolwarden.services.queries.held import HELD_STANDINGS, node_hold_queue

router = APIRouter(include_in_schema=False)


@router.post("/tenants/{name:path}/release-held")
def release_held(request: Request, ctx: Ctx, name: str, csrf_token: FormText = "") -> Response:
    gate = write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    tier = ctx.engine().standings()[name].tier.value
    if tier in HELD_STANDINGS:
        return refused(viewer, session, f"Not released: {name} is {tier}, so its mail stays "
                       "held until it may send again. Move it to another tier first (clear "
                       "the pin or pin it to risky), then release.", status=409)
    in_queue = node_hold_queue(ctx)
    if in_queue is None:
        return refused(viewer, session, "Not released: no Postfix to release from "
                       "(policyd.postfix_config_dir is not set, or postqueue failed).",
                       status=503)
    mine = in_queue.queue_ids(name)
    if not mine:
        return refused(viewer, session, "Nothing to release: none of this tenant's mail is "
                       "in Postfix's hold queue.", status=409)
    try:
        release_from_hold(ctx.postfix_config_dir, mine)
    except PostfixToolError:
        log.exception("dashboard: postsuper -H failed for %s", name)
        return refused(viewer, session, "Not released: postsuper failed; nothing was "
                       "released.", status=503)
    audit.record(ctx.store, actor=viewer.actor, source="dashboard", action="held.release",
                 target=f"tenant:{name}", at=ctx.now(), before={"held": len(mine)},
                 after={"released": mine})
    return see_other(f"/tenants/{segment(name)}?done=released")
