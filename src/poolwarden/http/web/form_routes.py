"""The dashboard's tier forms: pin a tenant's tier, suspend it, clear the pin.

Only operator-write users get these forms, and every POST passes
``common.write_gate`` (the session's anti-forgery token, no other origin, the
role, a known tenant). Suspending is a pin to ``suspended`` with a required
reason: the same path as an override, so it shows in the same places (the
tenant's moves, the audit log, ``GET /api/v1/overrides``). Each change writes
one audit row (source "dashboard") with the tenant's standing before and
after, in the same shape as the API's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from poolwarden.core.errors import InputError
from poolwarden.core.model import Tier
from poolwarden.http.web.common import (
    TIER_CHOICES,
    Ctx,
    FormText,
    Viewer,
    refused,
    see_other,
    segment,
    write_gate,
)
from poolwarden.http.web.sessions import Session
from poolwarden.services.access import audit
from poolwarden.services.queries.context import NodeContext
from poolwarden.services.queries.listings import standing_dict

router = APIRouter(include_in_schema=False)
WHY_MAX = 500


def _standing(ctx: NodeContext, name: str) -> dict[str, Any]:
    return standing_dict(name, ctx.engine().standings()[name])


def _pin(ctx: NodeContext, viewer: Viewer, session: Session, name: str, target: Tier,
         why: str, done: str) -> Response:
    """Pin ``name`` to ``target`` and audit it; the redirect back, or why not."""
    if len(why) > WHY_MAX:
        return refused(viewer, session, f"why: at most {WHY_MAX} characters.", status=400)
    before = _standing(ctx, name)
    now = ctx.now()
    try:
        ctx.engine().override(name, target, actor=viewer.actor, why=why, now=now,
                              source="dashboard")
    except InputError as err:
        return refused(viewer, session, f"{err.field or 'input'}: {err}", status=400)
    audit.record(ctx.store, actor=viewer.actor, source="dashboard", action="override.set",
                 target=f"tenant:{name}", at=now, before=before,
                 after={**_standing(ctx, name), "reason": why.strip()})
    return see_other(f"/tenants/{segment(name)}?done={done}")


@router.post("/tenants/{name:path}/override")
def override(request: Request, ctx: Ctx, name: str, tier: FormText = "",
             why: FormText = "", csrf_token: FormText = "") -> Response:
    gate = write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    try:
        target = Tier(tier)
    except ValueError:
        return refused(viewer, session, f"tier: unknown tier {tier[:40]!r} (one of: "
                       f"{', '.join(TIER_CHOICES)}).", status=400)
    return _pin(ctx, viewer, session, name, target, why, "override")


@router.post("/tenants/{name:path}/suspend")
def suspend(request: Request, ctx: Ctx, name: str, why: FormText = "",
            csrf_token: FormText = "") -> Response:
    gate = write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    if not why.strip():
        return refused(viewer, session, "why: a suspension needs a reason.", status=400)
    standing = ctx.engine().standings()[name]
    if standing.pinned and standing.tier is Tier.SUSPENDED:
        return refused(viewer, session, f"This tenant is suspended already (pinned by "
                       f"{standing.pinned_by}).", status=409)
    return _pin(ctx, viewer, session, name, Tier.SUSPENDED, why, "suspended")


@router.post("/tenants/{name:path}/clear-override")
def clear_override(request: Request, ctx: Ctx, name: str, why: FormText = "",
                   csrf_token: FormText = "") -> Response:
    gate = write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    if not why.strip() or len(why) > WHY_MAX:
        return refused(viewer, session, f"why: a reason of 1 to {WHY_MAX} characters is "
                       "needed.", status=400)
    before = _standing(ctx, name)
    if not before["pinned"]:
        return refused(viewer, session, "This tenant has no pin.", status=409)
    now = ctx.now()
    ctx.engine().clear_override(name, actor=viewer.actor, why=why.strip(), now=now,
                                source="dashboard")
    audit.record(ctx.store, actor=viewer.actor, source="dashboard", action="override.clear",
                 target=f"tenant:{name}", at=now, before=before,
                 after={**_standing(ctx, name), "reason": why.strip()})
    return see_other(f"/tenants/{segment(name)}?done=cleared")
