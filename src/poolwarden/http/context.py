"""The HTTP handlers' way to the node: ``get_ctx`` hands them the app's ``NodeContext``.

Handlers are plain ``def`` functions, so FastAPI runs them (and their store calls) in its
thread pool, never on the loop that also serves the routing agent.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from poolwarden.services.queries.context import NodeContext


def get_ctx(conn: HTTPConnection) -> NodeContext:
    """FastAPI dependency: the app's context (``app.state.ctx``)."""
    ctx: NodeContext = conn.app.state.ctx
    return ctx
