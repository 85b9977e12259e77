"""The dashboard's state-changing forms: pin a tenant's tier, clear the pin.

Only operator-write users get these forms, and every POST passes
``sessions.check_form`` (the session's anti-forgery token, and no other
origin). Each change writes one audit row (source "dashboard") with the
tenant's standing before and after, in the same shape as the API's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from poolwarden.core.errors import InputError
from poolwarden.core.model import Tier
from poolwarden.http.api.overrides import standing_dict
from poolwarden.http.context import AppContext
from poolwarden.http.web.common import (
    TIER_CHOICES,
    Ctx,
    FormText,
    Viewer,
    log,
    not_found,
    refused,
    see_other,
    segment,
    state_of,
    viewer_of,
)
from poolwarden.http.web.sessions import Session, check_form
from poolwarden.services import audit

router = APIRouter(include_in_schema=False)
WHY_MAX = 500


def _write_gate(request: Request, ctx: Ctx, name: str, csrf_token: str
                ) -> tuple[Viewer, Session] | Response:
    """Logged in, a valid form from this site, allowed to write, and a known tenant."""
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        state = state_of(ctx)
        problem = check_form(request, state.sessions.get(request), csrf_token)
        return refused(None, None, problem or "Log in first.")
    viewer, session = found
    problem = check_form(request, session, csrf_token)
    if problem is not None:
        log.warning("dashboard: refused a form from %s: %s", viewer.actor, problem)
        return refused(viewer, session, f"Refused: {problem}.")
    tenants = {t.name for t in ctx.config.inventory.tenants}
    if not viewer.operator and viewer.tenant != name:
        return not_found(viewer, session)
    if not viewer.can_write:
        log.warning("dashboard: %s (%s) tried to change tenant %r", viewer.actor,
                    viewer.role, name[:64])
        return refused(viewer, session, "Your role may not change anything.")
    if name not in tenants:
        return not_found(viewer, session)
    return viewer, session


def _standing(ctx: AppContext, name: str) -> dict[str, Any]:
    return standing_dict(name, ctx.engine().standings()[name])


@router.post("/tenants/{name:path}/override")
def override(request: Request, ctx: Ctx, name: str, tier: FormText = "",
             why: FormText = "", csrf_token: FormText = "") -> Response:
    gate = _write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    try:
        target = Tier(tier)
    except ValueError:
        return refused(viewer, session, f"tier: unknown tier {tier[:40]!r} (one of: "
                       f"{', '.join(TIER_CHOICES)}).", status=400)
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
    return see_other(f"/tenants/{segment(name)}?done=override")


@router.post("/tenants/{name:path}/clear-override")
def clear_override(request: Request, ctx: Ctx, name: str, why: FormText = "",
                   csrf_token: FormText = "") -> Response:
    gate = _write_gate(request, ctx, name, csrf_token)
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
