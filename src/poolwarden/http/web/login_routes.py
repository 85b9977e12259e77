"""Logging in and out of the dashboard.

The login form has its own short session (its anti-forgery token) under its own
cookie; a successful login drops it and starts a fresh session (no fixation).
Failed logins are throttled per client address, never per account, so nobody
can lock an operator out. Passwords are checked by ``services.access.auth`` (scrypt).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from poolwarden.http.web.common import Ctx, FormText, local, log, refused, see_other, state_of
from poolwarden.http.web.render import page
from poolwarden.http.web.sessions import LOGIN_COOKIE, check_form
from poolwarden.services.access import auth

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str = "/") -> Response:
    state = state_of(ctx)
    session = state.sessions.get(request)
    if session is not None and session.user is not None:
        return see_other(local(next))
    form_session = state.sessions.get(request, LOGIN_COOKIE)
    if form_session is None:
        form_session = state.sessions.new()
    form = page("login.html", {"csrf_token": form_session.csrf, "next": local(next)})
    state.sessions.set_cookie(form, request, form_session, LOGIN_COOKIE)
    return form


@router.post("/login")
def login(request: Request, ctx: Ctx, username: FormText = "", password: FormText = "",
          csrf_token: FormText = "", next: FormText = "/") -> Response:
    state = state_of(ctx)
    form_session = state.sessions.get(request, LOGIN_COOKIE)
    problem = check_form(request, form_session, csrf_token)
    client = request.client.host if request.client else "?"
    if problem is not None:
        log.warning("dashboard login refused from %s: %s", client, problem)
        return refused(None, None, f"Login refused: {problem}.")
    assert form_session is not None  # check_form refuses a missing session
    if state.throttle.blocked(client):
        log.warning("dashboard login throttled for %s", client)
        return refused(None, None, "Too many failed logins from your address; wait a "
                        "minute and try again.", status=429)
    principal = auth.verify_password(ctx.store, username, password)
    if principal is None:
        state.throttle.failed(client)
        log.warning("dashboard login failed for %r from %s", username[:64], client)
        return page("login.html", {"csrf_token": form_session.csrf, "next": local(next),
                                   "error": "Wrong user name or password."}, status=401)
    state.sessions.drop(form_session)
    old = state.sessions.get(request)
    if old is not None:  # logging in again replaces the session: no fixation, no leftovers
        state.sessions.drop(old)
    fresh = state.sessions.new(user=principal.name.removeprefix("user:"))
    response = see_other(local(next))
    state.sessions.set_cookie(response, request, fresh)
    state.sessions.clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, csrf_token: FormText = "") -> Response:
    state = state_of(ctx)
    session = state.sessions.get(request)
    problem = check_form(request, session, csrf_token)
    if problem is not None:
        return refused(None, None, f"Logout refused: {problem}.")
    assert session is not None
    state.sessions.drop(session)
    response = see_other("/login")
    state.sessions.clear_cookie(response, request)
    return response
