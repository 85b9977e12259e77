"""The HTTP app beside the routing agent: one process, one asyncio loop.

``poolwarden serve --http HOST:PORT`` runs the ``Runtime`` (policy server and
background jobs) and a uvicorn server for ``create_app`` as tasks of the same
loop. The socket is bound before anything starts, so a taken port or a bad
address fails at once with a clear message. Handlers run in uvicorn's thread
pool (plain ``def``), so store calls never block the loop that answers
Postfix. The runtime keeps the signals (SIGTERM stops both, SIGHUP reloads);
uvicorn's own signal capture is switched off. Binding to a non-loopback
address needs ``allow_remote`` (the API is meant for a reverse proxy or the
local host).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Generator

import uvicorn

from poolwarden.core.errors import InputError
from poolwarden.http.app import create_app
from poolwarden.services.queries.context import NodeContext, NodeStore
from poolwarden.services.runtime import Runtime

log = logging.getLogger("poolwarden.http")

DEFAULT_LISTEN = "127.0.0.1:8025"


def parse_listen(text: str, *, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), loopback unless ``allow_remote``."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"--http: expected HOST:PORT, got {text!r}", field="http")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"--http: {host!r} is not an IP address", field="http") from None
    if not address.is_loopback and not allow_remote:
        raise InputError(f"--http: {host} is not a loopback address; pass "
                         "--http-allow-remote to serve the API beyond this host", field="http")
    return host, int(port_text)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"--http: cannot listen on {host}:{port}: {exc.strerror}",
                         field="http") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the runtime."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def context_for(runtime: Runtime, *, allow_remote: bool = False) -> NodeContext:
    store: NodeStore = runtime.store
    return NodeContext(loaded_config=runtime.config, store=store, clock=runtime.clock,
                      node=runtime.node, runtime=runtime, allow_remote=allow_remote,
                      postfix_config_dir=runtime.config.settings.policyd.postfix_config_dir)


def server_for(ctx: NodeContext) -> EmbeddedServer:
    config = uvicorn.Config(create_app(ctx), lifespan="off", access_log=False,
                            log_config=None, proxy_headers=False, server_header=False,
                            date_header=True, timeout_graceful_shutdown=5)
    return EmbeddedServer(config)


async def run_with_http(runtime: Runtime, listen: str, *, allow_remote: bool = False) -> None:
    """Run the runtime and the HTTP app until SIGTERM (or ``runtime.request_stop()``)."""
    host, port = parse_listen(listen, allow_remote=allow_remote)
    sock = bind(host, port)
    server = server_for(context_for(runtime, allow_remote=allow_remote))
    http = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("HTTP API, dashboard and /metrics on http://%s:%d", host, port)
    try:
        await runtime.run()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await http
        sock.close()
