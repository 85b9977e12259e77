"""Errors as JSON: ``{"error": {"message": ..., "field": ...}}``, nothing else leaks.

Every error leaves the app in one shape. Validation errors name the field;
our own ``InputError`` keeps its message and field; a store failure is a
generic 503 and anything unexpected a generic 500, each with a correlation id
that is also in the server log next to the traceback. No stack trace, SQL text
or token ever reaches the body (docs/testing.md S6, ASVS 16.5.1).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poolwarden.core.errors import InputError, StoreError, UnknownTenantError

log = logging.getLogger("poolwarden.http")

MAX_MESSAGE = 300  # characters of a client-facing message (echoed input is cut)


def error_body(message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message[:MAX_MESSAGE], "field": field, **extra}}


def error_response(status: int, message: str, field: str | None = None,
                   headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(message, field, **extra), status_code=status,
                        headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or None


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    field = _field(first.get("loc", ()))
    # pydantic's message, never the input value it echoes in "input"
    message = str(first.get("msg", "invalid request"))
    return error_response(422, f"{field}: {message}" if field else message, field)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    field = getattr(exc, "field", None)
    return error_response(exc.status_code, detail, field, headers=exc.headers)


async def _input(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    status = 404 if isinstance(exc, UnknownTenantError) else 400
    return error_response(status, exc.message, exc.field)


async def _store(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex
    log.error("store error on %s %s [%s]: %s", request.method, request.url.path, incident, exc)
    return error_response(503, "the store is unavailable; try again later", None,
                          correlation_id=incident)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(StoreError, _store)
    app.add_middleware(CatchAll)


class CatchAll:
    """Outermost guard: any exception a handler did not expect becomes a generic 500
    (with a correlation id) instead of a traceback page or a dropped connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            incident = uuid.uuid4().hex
            log.exception("unhandled error on %s %s [%s]", scope.get("method"),
                          scope.get("path"), incident)
            if started:  # too late for a clean answer: the server closes the connection
                raise
            body = json.dumps(error_body("internal error", None,
                                         correlation_id=incident)).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
