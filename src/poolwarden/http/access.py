"""Who may call which route: one declared rule per API route, enforced server side.

Every API route is registered through ``route()``, which records its rule in
``RULES`` (the S1 test walks the app's route table and fails on any route
without one) and attaches the guard:

- ``operator-read``: operators only; a tenant token gets 403 (the route itself
  reveals nothing about any tenant).
- ``operator-write``: write operators only (403 otherwise).
- ``tenant-path``: operators, or a tenant token whose tenant is the ``{tenant}``
  path parameter; any other tenant name answers 404, exactly like a tenant
  that does not exist, so a tenant cannot learn which others exist.
- ``tenant-filter``: lists; a tenant token sees only its own rows, and naming
  another tenant in a filter answers 404 (``scoped_tenant``).

Refusals of an authenticated caller are logged and written to the audit log
(docs/testing.md S5: failed authorization is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from poolwarden.core.errors import StoreError
from poolwarden.http.context import get_ctx
from poolwarden.http.models import ERROR_RESPONSES
from poolwarden.http.ratelimit import FailureLimiter
from poolwarden.services.access import audit, auth
from poolwarden.services.access.auth import Principal
from poolwarden.services.queries.context import NodeContext

log = logging.getLogger("poolwarden.http.access")


class Rule(StrEnum):
    OPERATOR_READ = "operator-read"
    OPERATOR_WRITE = "operator-write"
    TENANT_PATH = "tenant-path"
    TENANT_FILTER = "tenant-filter"


# (method, path template) -> rule, for every route registered through ``route()``
RULES: dict[tuple[str, str], Rule] = {}

UNKNOWN_TENANT = "unknown tenant"
API_PREFIX = "/api/v1"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def limiter(ctx: NodeContext) -> FailureLimiter:
    found = ctx.extras.get("api_limiter")
    if not isinstance(found, FailureLimiter):
        found = ctx.extras["api_limiter"] = FailureLimiter()
    return found


def principal(request: Request, ctx: Annotated[NodeContext, Depends(get_ctx)]) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 without a live token.
    A revoked token is refused on its next request (no cache in between). Failed
    attempts are rate-limited per client address (``ratelimit``)."""
    secret = _bearer(request)
    found = auth.verify_token(ctx.store, secret, now=ctx.now()) if secret else None
    if found is None:
        client = request.client.host if request.client else "-"
        limits = limiter(ctx)
        wait = limits.blocked(client)
        if wait is not None:
            raise HTTPException(429, "too many failed attempts; try again later",
                                headers={"Retry-After": str(int(wait))})
        limits.failed(client)
        raise HTTPException(401, "a valid API token is required (Authorization: Bearer ...)",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = found
    return found


def deny(ctx: NodeContext, request: Request, who: Principal, status: int,
         message: str) -> HTTPException:
    """Log and audit a refused request; the exception to raise."""
    log.warning("refused %s %s for %s (%s): %d", request.method,
                ascii(request.url.path)[:300], ascii(who.name), who.role.value, status)
    try:
        audit.record(ctx.store, actor=who.name, source="api", action="access.denied",
                     target=f"{request.method} {request.url.path}", at=ctx.now(),
                     after={"status": status, "role": who.role.value, "tenant": who.tenant})
    except StoreError:
        log.error("could not audit a refused request")
    return HTTPException(status, message)


def _guard(rule: Rule) -> Callable[..., Principal]:
    def check(request: Request, ctx: Annotated[NodeContext, Depends(get_ctx)],
              who: Annotated[Principal, Depends(principal)]) -> Principal:
        if rule is Rule.OPERATOR_READ and not who.is_operator:
            raise deny(ctx, request, who, 403, "this needs an operator token")
        if rule is Rule.OPERATOR_WRITE and not who.can_write:
            raise deny(ctx, request, who, 403, "this needs an operator-write token")
        if rule is Rule.TENANT_PATH and not who.is_operator:
            wanted = request.path_params.get("tenant")
            if wanted != who.tenant:
                raise deny(ctx, request, who, 404, UNKNOWN_TENANT)
        return who

    return check


def scoped_tenant(ctx: NodeContext, request: Request, who: Principal,
                  wanted: str | None) -> str | None:
    """The tenant a list may show: operators get what they asked for (None: all), a
    tenant token its own tenant; asking for another answers 404."""
    if who.is_operator:
        return wanted
    if wanted is not None and wanted != who.tenant:
        raise deny(ctx, request, who, 404, UNKNOWN_TENANT)
    return who.tenant


def route(router: APIRouter, method: str, path: str, rule: Rule,
          **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API route with its access rule (the only way routes are added)."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        RULES[(method, router.prefix + path)] = rule
        extra = {**kwargs.pop("openapi_extra", {}), "x-access": rule.value}
        responses = {**ERROR_RESPONSES, **kwargs.pop("responses", {})}
        router.add_api_route(path, fn, methods=[method], openapi_extra=extra,
                             dependencies=[Depends(_guard(rule))], responses=responses,
                             **kwargs)
        return fn

    return register


def iter_routes(routes: Iterable[BaseRoute], prefix: str = ""
                ) -> Iterator[tuple[str, str, APIRoute]]:
    """Every (method, full path, route) of a route table, into included routers too
    (FastAPI >= 0.16x keeps an included router as one entry instead of copying its
    routes). The S1 and parity tests walk the app's table with this."""
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                yield method, prefix + route.path, route
            continue
        inner = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if inner is not None:
            yield from iter_routes(inner.routes, prefix + getattr(context, "prefix", ""))


Caller = Annotated[Principal, Depends(principal)]
Ctx = Annotated[NodeContext, Depends(get_ctx)]
