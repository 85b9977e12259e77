"""The dashboard's Jinja2 environment: templates from the package, autoescaping everywhere.

Autoescape is on for every template whatever its name, so tenant-controlled
text (names, reasons, bounce texts) is always HTML-encoded; JSON for the charts
goes through ``tojson``, which also encodes ``<``, ``>``, ``&`` and quotes so it
cannot close its ``<script>`` element. Pages are sent with a strict
Content-Security-Policy: scripts and styles from this origin only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader
from starlette.responses import HTMLResponse

from poolwarden.core.reaction import format_duration

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry one tenant's data: never from a shared cache
}


def _pct(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.{digits}f} %"


def _when(epoch: Any) -> str:
    if epoch is None or epoch == 0:
        return "—"
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _segment(value: Any) -> str:
    """One URL path segment: every reserved character encoded, ``/`` included."""
    return quote(str(value), safe="")


def _safe_link(value: Any) -> str:
    """The path (and query) of a stored link, as a link on this site: alerts carry absolute
    links (``[alerts] base_url``), and the dashboard may be reached under another name.
    Anything that is not an http(s) URL or a path (``javascript:``…) becomes ``#``."""
    parts = urlsplit(str(value))
    if parts.scheme not in ("", "http", "https") or not parts.path.startswith("/"):
        return "#"
    path = "/" + parts.path.lstrip("/\\")
    return path + (f"?{parts.query}" if parts.query else "")


def make_environment() -> Environment:
    env = Environment(loader=PackageLoader("poolwarden.http.web", "templates"),
                      autoescape=True)
    env.filters["pct"] = _pct
    env.filters["when"] = _when
    env.filters["seg"] = _segment
    env.filters["safe_link"] = _safe_link
    env.filters["duration"] = format_duration
    return env


ENV = make_environment()


def page(template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    """Render a template into a response carrying the security headers."""
    defaults: dict[str, Any] = {"user": None, "csrf_token": "", "error": None, "notice": None}
    html = ENV.get_template(template).render({**defaults, **context})
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
