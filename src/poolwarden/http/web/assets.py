"""The dashboard's static files, served from the installed package (no CDN, no network).

Only the files listed here are served: a request for anything else, or a
path that tries to leave the folder, is a 404. The vendored Chart.js build and
its licence ship as package data (``static/vendor/``).
"""

from __future__ import annotations

from importlib import resources

from starlette.responses import PlainTextResponse, Response

CHART_JS_VERSION = "4.6.1"

FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "vendor/chart.umd.min.js": "text/javascript; charset=utf-8",
    "vendor/chart.js-LICENSE.md": "text/plain; charset=utf-8",
}


def static_response(path: str) -> Response:
    media_type = FILES.get(path)
    if media_type is None:
        return PlainTextResponse("not found", status_code=404)
    body = resources.files("poolwarden.http.web").joinpath("static", *path.split("/")).read_bytes()
    return Response(body, media_type=media_type, headers={
        "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
