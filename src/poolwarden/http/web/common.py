"""What every dashboard route shares: the viewer, the per-app state, redirects and errors.

Every page needs a logged-in user, reloaded from the store on each request so a
disabled or removed user (or a changed role) takes effect at once. Tenant users
see only their own tenant: anything else answers ``not_found``, the same page as
for a name that does not exist, so probing tells nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from poolwarden.core.model import TIER_RANK
from poolwarden.http.context import get_ctx
from poolwarden.http.web.render import page
from poolwarden.http.web.sessions import LoginThrottle, Session, SessionStore, check_form
from poolwarden.services.access import auth
from poolwarden.services.queries.context import NodeContext

log = logging.getLogger("poolwarden.http.web")

Ctx = Annotated[NodeContext, Depends(get_ctx)]
FormText = Annotated[str, Form()]
TIER_CHOICES = [t.value for t in sorted(TIER_RANK, key=TIER_RANK.__getitem__)]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in user as the templates see it."""

    name: str
    role: str
    tenant: str | None

    @property
    def operator(self) -> bool:
        return self.role != auth.Role.TENANT.value

    @property
    def can_write(self) -> bool:
        return self.role == auth.Role.OPERATOR_WRITE.value

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


@dataclass(slots=True)
class WebState:
    sessions: SessionStore
    throttle: LoginThrottle


def state_of(ctx: NodeContext) -> WebState:
    """The dashboard's per-app state, created on first use (kept in ``ctx.extras``)."""
    state = ctx.extras.get("dashboard")
    if not isinstance(state, WebState):
        secret = ctx.extras.get("session_secret")
        state = WebState(SessionStore(secret if isinstance(secret, bytes) else None,
                                      clock=ctx.clock),
                         LoginThrottle(clock=ctx.clock))
        ctx.extras["dashboard"] = state
    return state


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def local(url: str) -> str:
    """A redirect target on this site; anything else goes to the overview."""
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


def viewer_of(ctx: NodeContext, request: Request) -> tuple[Viewer, Session] | Response:
    """The logged-in viewer, or the redirect to the login page."""
    state = state_of(ctx)
    session = state.sessions.get(request)
    if session is not None and session.user is not None:
        row = ctx.store.user(session.user)
        if row is not None and not row.disabled:
            return Viewer(row.name, row.role, row.tenant), session
        state.sessions.drop_user(session.user)  # removed or disabled: every session ends
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/login?next={quote_path(target)}")


def quote_path(text: str) -> str:
    return quote(text, safe="/")


def segment(text: str) -> str:
    return quote(text, safe="")


def not_found(viewer: Viewer | None, session: Session | None) -> Response:
    """One answer for "does not exist" and "not yours": probing tells nothing."""
    return page("error.html", {"user": viewer, "csrf_token": session.csrf if session else "",
                               "status": 404, "heading": "Not found",
                               "message": "Nothing here."}, status=404)


def refused(viewer: Viewer | None, session: Session | None, why: str,
             status: int = 403) -> Response:
    return page("error.html", {"user": viewer, "csrf_token": session.csrf if session else "",
                               "status": status, "heading": "Refused", "message": why},
                status=status)


def base_context(viewer: Viewer, session: Session, ctx: NodeContext) -> dict[str, Any]:
    return {"user": viewer, "csrf_token": session.csrf, "now": ctx.now(),
            "window_days": ctx.config.thresholds.window_days}


def write_gate(request: Request, ctx: NodeContext, name: str, csrf_token: str
               ) -> tuple[Viewer, Session] | Response:
    """The gate of every tenant form: logged in, a valid form from this site (checked
    first, so a forged request learns nothing else), allowed to write, a known tenant."""
    found = viewer_of(ctx, request)
    if isinstance(found, Response):
        problem = check_form(request, state_of(ctx).sessions.get(request), csrf_token)
        return refused(None, None, problem or "Log in first.")
    viewer, session = found
    problem = check_form(request, session, csrf_token)
    if problem is not None:
        log.warning("dashboard: refused a form from %s: %s", viewer.actor, problem)
        return refused(viewer, session, f"Refused: {problem}.")
    if not viewer.operator and viewer.tenant != name:
        return not_found(viewer, session)
    if not viewer.can_write:
        log.warning("dashboard: %s (%s) tried to change tenant %r", viewer.actor,
                    viewer.role, name[:64])
        return refused(viewer, session, "Your role may not change anything.")
    if name not in {t.name for t in ctx.config.inventory.tenants}:
        return not_found(viewer, session)
    return viewer, session
