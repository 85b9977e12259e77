"""Dashboard sessions: a signed cookie naming a server-side session, and its CSRF token.

The cookie carries only a random session id, signed with itsdangerous (so a
forged or expired id is refused before any lookup) and flagged HttpOnly,
SameSite=Strict, and Secure unless the dashboard is reached on loopback. The
session itself (who is logged in, the per-session anti-forgery token) lives in
this process: logging out or restarting ends it for real, which a
self-contained cookie could not do. Sessions are bounded in number and age.

``check_form`` is the one gate every POST goes through: the hidden
``csrf_token`` must match the session's, and the request must not come from
another origin (``Origin`` and ``Sec-Fetch-Site``, when the browser sends them).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "pw_session"
# the login form's own (anonymous) session has its own cookie: a cross-site link to the
# login page, which arrives without the SameSite=Strict session cookie, must not replace
# (and so end) the session of a user who is logged in
LOGIN_COOKIE = "pw_login"
IDLE_SECONDS = 8 * 3600  # an unused session ends after a working day
MAX_AGE_SECONDS = 24 * 3600  # and any session after a day, used or not
MAX_SESSIONS = 10_000  # oldest dropped first: a flood of logins cannot exhaust memory


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    created: float
    seen: float
    user: str | None = None  # None: not logged in yet (the login form's own session)
    data: dict[str, str] = field(default_factory=dict)


class SessionStore:
    """Sessions of this process, keyed by id; ``clock`` is injectable for tests."""

    def __init__(self, secret: bytes | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = TimestampSigner(secret or secrets.token_bytes(32),
                                       salt="poolwarden.dashboard.session")
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._now = clock

    def new(self, user: str | None = None) -> Session:
        now = self._now()
        session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          created=now, seen=now, user=user)
        self._sessions[session.sid] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, request: Request, cookie: str = COOKIE) -> Session | None:
        raw = request.cookies.get(cookie)
        if not raw:
            return None
        try:
            sid = self._signer.unsign(raw, max_age=MAX_AGE_SECONDS).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self._now()
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS:
            self.drop(session)
            return None
        session.seen = now
        self._sessions.move_to_end(sid)
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)

    def drop_user(self, user: str) -> int:
        """End every session of a user (disabled account, changed role); how many."""
        gone = [sid for sid, s in self._sessions.items() if s.user == user]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)

    def set_cookie(self, response: Response, request: Request, session: Session,
                   cookie: str = COOKIE) -> None:
        response.set_cookie(
            cookie, self._signer.sign(session.sid).decode(), max_age=MAX_AGE_SECONDS,
            path="/", httponly=True, samesite="strict", secure=not on_loopback(request))

    @staticmethod
    def clear_cookie(response: Response, request: Request, cookie: str = COOKIE) -> None:
        response.delete_cookie(cookie, path="/", httponly=True, samesite="strict",
                               secure=not on_loopback(request))


def on_loopback(request: Request) -> bool:
    """Whether the browser reached us on a loopback name: the only case where a session
    cookie may travel without TLS."""
    host = (request.url.hostname or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def check_form(request: Request, session: Session | None, token: str | None) -> str | None:
    """Why this state-changing request must be refused, or None when it may proceed."""
    if session is None:
        return "no session (log in again)"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"request from another site or origin (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        return "request from another origin"
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        return "missing or wrong anti-forgery token (reload the page)"
    return None


class LoginThrottle:
    """Failed logins per client address in a sliding minute: past ``limit`` the client waits.

    Keyed by the client, never by the account, so an attacker cannot lock an operator
    out; bounded in the number of clients it remembers.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._now = clock

    def blocked(self, client: str) -> bool:
        recent = self._recent(client)
        return len(recent) >= self.limit

    def failed(self, client: str) -> None:
        self._recent(client).append(self._now())
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def _recent(self, client: str) -> list[float]:
        cutoff = self._now() - self.window
        kept = [t for t in self._failures.get(client, []) if t > cutoff]
        self._failures[client] = kept
        return kept
