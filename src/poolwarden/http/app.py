"""``create_app(ctx)``: the one FastAPI app behind ``poolwarden serve --http``.

Mounts the REST API at ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``, docs
at ``/api/v1/docs``), then whatever of the dashboard and the metrics endpoint
exists in this build. How they plug in:

- Dashboard (``poolwarden.http.web``, a package): expose ``router``, an
  ``APIRouter`` with the pages (declare them with ``include_in_schema=False``
  so the published API schema stays the API's), and optionally ``static``, an
  ASGI app (e.g. ``StaticFiles``) mounted at ``/static``. Handlers read the
  ``NodeContext`` with ``Depends(poolwarden.http.context.get_ctx)``; writes call
  ``services.access.audit.record(..., source="dashboard")``; logins call
  ``services.access.auth.verify_password``.
- Metrics (``poolwarden.http.metrics``, a module): expose ``router``, an
  ``APIRouter`` serving ``GET /metrics`` (``include_in_schema=False``); it reads
  ``ctx.runtime`` (None when standalone) for live counters.

A module that does not exist yet is skipped; one that exists but fails to
import is an error, not something to hide.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolwarden.http import errors
from poolwarden.http.api import router as api_router
from poolwarden.http.ratelimit import FailureLimiter
from poolwarden.services.queries.context import NodeContext

log = logging.getLogger("poolwarden.http")

API_PREFIX = "/api/v1"
OPTIONAL_PARTS = ("poolwarden.http.web", "poolwarden.http.metrics")


def optional_module(name: str) -> ModuleType | None:
    """Import ``name``, or None when it (not one of its imports) does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


def create_app(ctx: NodeContext) -> FastAPI:
    app = FastAPI(title="poolwarden", version="1",
                  description="Shared pool or dedicated IP, per tenant: the operator API.",
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs",
                  redoc_url=None)
    app.state.ctx = ctx
    ctx.extras.setdefault("api_limiter", FailureLimiter())  # one per app, shared by threads
    errors.install(app)
    app.add_middleware(SecurityHeaders)
    app.include_router(api_router)
    for name in OPTIONAL_PARTS:
        module = optional_module(name)
        router: Any = getattr(module, "router", None)
        if router is None:  # absent, or a bare namespace package so far
            continue
        app.include_router(router)
        static = getattr(module, "static", None)
        if static is not None:
            app.mount("/static", static, name="static")
        log.debug("mounted %s", name)
    return app


class SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no framing, no referrer leak;
    API answers (which may hold tenant data) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith(API_PREFIX)

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for key, value in ((b"x-content-type-options", b"nosniff"),
                                   (b"x-frame-options", b"DENY"),
                                   (b"referrer-policy", b"no-referrer")):
                    if key not in names:
                        headers.append((key, value))
                if api and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add)
