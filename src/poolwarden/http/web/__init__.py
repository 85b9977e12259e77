"""The web dashboard: server-rendered pages (Jinja2) with Chart.js charts, served by the
HTTP app beside the API.

``router`` holds every page, form and static file (``/``, ``/login``, ``/logout``,
``/tenants/{name}``, ``/ips/{address}``, ``/audit``, ``/static/...``); the app includes
it. It reads the app's ``AppContext`` (``app.state.ctx``).
"""

from poolwarden.http.web.routes import router

__all__ = ["router"]
