"""The dashboard's pages and forms: login, overview, tenant, IP, audit, override.

Every page needs a logged-in user, reloaded from the store on each request so a
disabled user or a changed role takes effect at once. Tenant users see only
their own tenant: any other tenant, IP page or the audit log answers 404, the
same as a name that does not exist, so probing tells nothing. Only
operator-write users get forms that change state, and every POST passes
``sessions.check_form`` (anti-forgery token + origin). GET never changes
state. Handlers are plain ``def``: FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from poolwarden.core.errors import InputError
from poolwarden.core.model import TIER_RANK, Tier
from poolwarden.http.context import AppContext, get_ctx
from poolwarden.http.web import extras, pages
from poolwarden.http.web.assets import static_response
from poolwarden.http.web.render import page
from poolwarden.http.web.sessions import (
    LOGIN_COOKIE,
    LoginThrottle,
    Session,
    SessionStore,
    check_form,
)
from poolwarden.services import audit, auth
from poolwarden.services.reports import move_dict

log = logging.getLogger("poolwarden.http.web")

router = APIRouter(include_in_schema=False)
Ctx = Annotated[AppContext, Depends(get_ctx)]
FormText = Annotated[str, Form()]
WHY_MAX = 500
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


def _state(ctx: AppContext) -> WebState:
    """The dashboard's per-app state, created on first use (kept in ``ctx.extras``)."""
    state = ctx.extras.get("dashboard")
    if not isinstance(state, WebState):
        secret = ctx.extras.get("session_secret")
        state = WebState(SessionStore(secret if isinstance(secret, bytes) else None,
                                      clock=ctx.clock),
                         LoginThrottle(clock=ctx.clock))
        ctx.extras["dashboard"] = state
    return state


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _local(url: str) -> str:
    """A redirect target on this site; anything else goes to the overview."""
    if url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


def _viewer(ctx: AppContext, request: Request) -> tuple[Viewer, Session] | Response:
    """The logged-in viewer, or the redirect to the login page."""
    state = _state(ctx)
    session = state.sessions.get(request)
    if session is not None and session.user is not None:
        row = ctx.store.user(session.user)
        if row is not None and not row.disabled:
            return Viewer(row.name, row.role, row.tenant), session
        state.sessions.drop_user(session.user)  # removed or disabled: every session ends
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _see_other(f"/login?next={_quote(target)}")


def _quote(text: str) -> str:
    return quote(text, safe="/")


def _seg(text: str) -> str:
    return quote(text, safe="")


def _not_found(viewer: Viewer | None, session: Session | None) -> Response:
    """One answer for "does not exist" and "not yours": probing tells nothing."""
    return page("error.html", {"user": viewer, "csrf_token": session.csrf if session else "",
                               "status": 404, "heading": "Not found",
                               "message": "Nothing here."}, status=404)


def _refused(viewer: Viewer | None, session: Session | None, why: str,
             status: int = 403) -> Response:
    return page("error.html", {"user": viewer, "csrf_token": session.csrf if session else "",
                               "status": status, "heading": "Refused", "message": why},
                status=status)


def _base(viewer: Viewer, session: Session, ctx: AppContext) -> dict[str, Any]:
    return {"user": viewer, "csrf_token": session.csrf, "now": ctx.now(),
            "window_days": ctx.config.thresholds.window_days}


# -- login -------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str = "/") -> Response:
    state = _state(ctx)
    session = state.sessions.get(request)
    if session is not None and session.user is not None:
        return _see_other(_local(next))
    form_session = state.sessions.get(request, LOGIN_COOKIE)
    if form_session is None:
        form_session = state.sessions.new()
    form = page("login.html", {"csrf_token": form_session.csrf, "next": _local(next)})
    state.sessions.set_cookie(form, request, form_session, LOGIN_COOKIE)
    return form


@router.post("/login")
def login(request: Request, ctx: Ctx, username: FormText = "", password: FormText = "",
          csrf_token: FormText = "", next: FormText = "/") -> Response:
    state = _state(ctx)
    form_session = state.sessions.get(request, LOGIN_COOKIE)
    problem = check_form(request, form_session, csrf_token)
    client = request.client.host if request.client else "?"
    if problem is not None:
        log.warning("dashboard login refused from %s: %s", client, problem)
        return _refused(None, None, f"Login refused: {problem}.")
    assert form_session is not None  # check_form refuses a missing session
    if state.throttle.blocked(client):
        log.warning("dashboard login throttled for %s", client)
        return _refused(None, None, "Too many failed logins from your address; wait a "
                        "minute and try again.", status=429)
    principal = auth.verify_password(ctx.store, username, password)
    if principal is None:
        state.throttle.failed(client)
        log.warning("dashboard login failed for %r from %s", username[:64], client)
        return page("login.html", {"csrf_token": form_session.csrf, "next": _local(next),
                                   "error": "Wrong user name or password."}, status=401)
    state.sessions.drop(form_session)
    old = state.sessions.get(request)
    if old is not None:  # logging in again replaces the session: no fixation, no leftovers
        state.sessions.drop(old)
    fresh = state.sessions.new(user=principal.name.removeprefix("user:"))
    response = _see_other(_local(next))
    state.sessions.set_cookie(response, request, fresh)
    state.sessions.clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, csrf_token: FormText = "") -> Response:
    state = _state(ctx)
    session = state.sessions.get(request)
    problem = check_form(request, session, csrf_token)
    if problem is not None:
        return _refused(None, None, f"Logout refused: {problem}.")
    assert session is not None
    state.sessions.drop(session)
    response = _see_other("/login")
    state.sessions.clear_cookie(response, request)
    return response


# -- pages -------------------------------------------------------------------


@router.get("/")
def overview(request: Request, ctx: Ctx) -> Response:
    found = _viewer(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    if not viewer.operator:
        return _see_other(f"/tenants/{_seg(viewer.tenant or '')}")
    engine, now = ctx.engine(), ctx.now()
    data = pages.overview(engine, engine.snapshot(now), now, extras=extras.overview(ctx, now))
    return page("overview.html", {**_base(viewer, session, ctx), "page": data})


# ``:path``: a tenant name may hold "/" (names only exclude whitespace and controls)
@router.get("/tenants/{name:path}")
def tenant(request: Request, ctx: Ctx, name: str, done: str = "") -> Response:
    found = _viewer(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    engine, now = ctx.engine(), ctx.now()
    if name not in engine.tenants or (not viewer.operator and viewer.tenant != name):
        if not viewer.operator:
            log.warning("dashboard: %s (tenant %s) asked for tenant %r", viewer.actor,
                        viewer.tenant, name[:64])
        return _not_found(viewer, session)
    data = pages.tenant_page(engine, engine.snapshot(now), name, now)
    notice = {"override": "Override recorded.", "cleared": "Pin cleared."}.get(done)
    return page("tenant.html", {**_base(viewer, session, ctx), "t": data, "notice": notice,
                                "thresholds": data["thresholds"],
                                "tiers": TIER_CHOICES})


@router.get("/ips/{address}")
def ip(request: Request, ctx: Ctx, address: str) -> Response:
    found = _viewer(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    engine, now = ctx.engine(), ctx.now()
    snapshot = engine.snapshot(now)
    if not viewer.operator or address not in snapshot.ips:
        return _not_found(viewer, session)
    data = pages.ip_page(engine, snapshot, address, now,
                         warmup=extras.warmup_getter(engine, now))
    return page("ip.html", {**_base(viewer, session, ctx), "ip": data})


@router.get("/audit")
def audit_list(request: Request, ctx: Ctx) -> Response:
    found = _viewer(ctx, request)
    if isinstance(found, Response):
        return found
    viewer, session = found
    if not viewer.operator:
        return _not_found(viewer, session)
    tenants = {t.name for t in ctx.config.inventory.tenants}
    rows = [extras.audit_view(row, tenants) for row in audit.list_rows(ctx.store, limit=200)]
    return page("audit.html", {**_base(viewer, session, ctx), "rows": rows})


# -- writes ------------------------------------------------------------------


def _write_gate(request: Request, ctx: Ctx, name: str, csrf_token: str
                ) -> tuple[Viewer, Session] | Response:
    """Logged in, a valid form from this site, allowed to write, and a known tenant."""
    found = _viewer(ctx, request)
    if isinstance(found, Response):
        state = _state(ctx)
        problem = check_form(request, state.sessions.get(request), csrf_token)
        return _refused(None, None, problem or "Log in first.")
    viewer, session = found
    problem = check_form(request, session, csrf_token)
    if problem is not None:
        log.warning("dashboard: refused a form from %s: %s", viewer.actor, problem)
        return _refused(viewer, session, f"Refused: {problem}.")
    tenants = {t.name for t in ctx.config.inventory.tenants}
    if not viewer.operator and viewer.tenant != name:
        return _not_found(viewer, session)
    if not viewer.can_write:
        log.warning("dashboard: %s (%s) tried to change tenant %r", viewer.actor,
                    viewer.role, name[:64])
        return _refused(viewer, session, "Your role may not change anything.")
    if name not in tenants:
        return _not_found(viewer, session)
    return viewer, session


def _standing(ctx: AppContext, name: str) -> dict[str, Any]:
    s = ctx.engine().standings()[name]
    return {"tier": s.tier.value, "pinned": s.pinned, "pinned_by": s.pinned_by,
            "pinned_why": s.pinned_why}


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
        return _refused(viewer, session, f"tier: unknown tier {tier[:40]!r} (one of: "
                        f"{', '.join(TIER_CHOICES)}).", status=400)
    if len(why) > WHY_MAX:
        return _refused(viewer, session, f"why: at most {WHY_MAX} characters.", status=400)
    before = _standing(ctx, name)
    try:
        move = ctx.engine().override(name, target, actor=viewer.actor, why=why,
                                     now=ctx.now(), source="dashboard")
    except InputError as err:
        return _refused(viewer, session, f"{err.field or 'input'}: {err}", status=400)
    audit.record(ctx.store, actor=viewer.actor, source="dashboard", action="override",
                 target=f"tenant:{name}", at=move.at, before=before,
                 after={**_standing(ctx, name), "move": move_dict(move)})
    return _see_other(f"/tenants/{_seg(name)}?done=override")


@router.post("/tenants/{name:path}/clear-override")
def clear_override(request: Request, ctx: Ctx, name: str, why: FormText = "",
                   csrf_token: FormText = "") -> Response:
    gate = _write_gate(request, ctx, name, csrf_token)
    if isinstance(gate, Response):
        return gate
    viewer, session = gate
    if not why.strip() or len(why) > WHY_MAX:
        return _refused(viewer, session, f"why: a reason of 1 to {WHY_MAX} characters is "
                        "needed.", status=400)
    before = _standing(ctx, name)
    now = ctx.now()
    ctx.engine().clear_override(name, actor=viewer.actor, why=why.strip(), now=now,
                                source="dashboard")
    audit.record(ctx.store, actor=viewer.actor, source="dashboard", action="clear-override",
                 target=f"tenant:{name}", at=now, before=before,
                 after={**_standing(ctx, name), "why": why.strip()})
    return _see_other(f"/tenants/{_seg(name)}?done=cleared")


# -- static files --------------------------------------------------------------


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    return static_response(path)
