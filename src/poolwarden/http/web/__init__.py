"""The web dashboard: server-rendered pages (Jinja2) with Chart.js charts, served by the
HTTP app beside the API.

``router`` holds every page, form and static file (``/``, ``/login``, ``/logout``,
``/tenants/{name}`` and its forms, ``/ips/{address}``, ``/audit``, ``/static/...``),
all left out of the published OpenAPI schema; the app includes it. Handlers read the app's
``NodeContext`` (``app.state.ctx``).
"""

from fastapi import APIRouter

from poolwarden.http.web import form_routes, held_routes, login_routes, page_routes

router = APIRouter(include_in_schema=False)
for _part in (login_routes, page_routes, form_routes, held_routes):
    # the routes themselves, not a nested router: ``router.routes`` stays a flat list of
    # APIRoute that tests (and the API's route-table checks) can enumerate
    router.routes.extend(_part.router.routes)

__all__ = ["router"]
