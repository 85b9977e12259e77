"""policyd: the asyncio server that speaks the Postfix policy protocol to Postfix.

A thin ``asyncio.Protocol`` around ``PolicyAgent``: persistent connections on
a unix socket (mode 0660) and/or TCP on loopback; bytes go through the sans-io
``PolicyReader`` and each complete request is answered at once, in order,
inside ``data_received`` (no task or await per request).
Bounds: a request must complete within ``request_timeout`` once it has
started (slowloris), at most ``max_connections`` at a time, non-loopback
TCP peers are refused unless allowed; protocol violations close the
connection without a reply. An idle connection between requests is never
closed by us (Postfix closes it after max_idle). ``stop()`` stops accepting,
answers every request already received, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from time import perf_counter
from typing import Protocol

from poolwarden.adapters.listeners import Listen, open_listeners
from poolwarden.services.queries.metrics import LatencyHistogram
from poolwarden.wire.postfix_policy import (
    PolicyReader,
    PolicyRequest,
    ProtocolViolation,
    encode_action,
)

log = logging.getLogger("poolwarden.policyd")

WRITE_HIGH_WATER = 256 * 1024  # a client that sends without reading gets paused
# at stop, an idle connection may already have a request in the socket that the loop has
# not read yet; closing at once would reset it, so idle connections linger this long
STOP_LINGER = 0.2


class Answerer(Protocol):
    """What the server asks: the routing agent, or anything that answers like it."""

    def answer(self, request: PolicyRequest, connection: int = 0) -> str: ...

    def forget_connection(self, connection: int) -> None: ...


class _Connection(asyncio.Protocol):
    __slots__ = ("id", "parser", "server", "timer", "transport")

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.parser = PolicyReader()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server.admit(self, transport):
            transport.abort()
            return
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            requests = self.parser.feed(data)
        except ProtocolViolation as exc:
            self.server.violations += 1
            log.warning("closing connection %d without reply: %s", self.id, exc)
            transport.abort()
            return
        if requests:
            answer = self.server.agent.answer
            cid = self.id
            latency = self.server.latency  # decision latency (metrics): one list append
            if len(requests) == 1:
                started = perf_counter()
                action = answer(requests[0], cid)
                latency.observe(perf_counter() - started)
                transport.write(encode_action(action))
            else:
                started = perf_counter()
                actions = [answer(r, cid) for r in requests]
                latency.observe_many(perf_counter() - started, len(actions))
                transport.write(b"".join(encode_action(a) for a in actions))
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.parser.pending:
            if self.timer is None:  # the deadline runs from the request's first bytes
                self.timer = asyncio.get_running_loop().call_later(
                    self.server.request_timeout, self._too_slow)
        else:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.server.stopping:
                self.close()

    def _too_slow(self) -> None:
        self.timer = None
        log.warning("closing connection %d: request incomplete after %.1f s", self.id,
                    self.server.request_timeout)
        self.close()

    def pause_writing(self) -> None:  # the peer is not reading its replies
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # flushes replies already written

    def close_if_idle(self) -> None:
        if not self.parser.pending:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server.forget(self)


class PolicyServer:
    def __init__(self, agent: Answerer, *, request_timeout: float = 10.0,
                 max_connections: int = 1000, allow_remote: bool = False,
                 socket_mode: int = 0o660, socket_group: str | None = "postfix") -> None:
        self.agent = agent
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.allow_remote = allow_remote
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.servers: list[asyncio.Server] = []
        self.addresses: list[str] = []
        self._connections: dict[int, _Connection] = {}
        self._next_id = 0
        self.stopping = False
        self._drained = asyncio.Event()
        self.refused = 0
        self.violations = 0
        self.latency = LatencyHistogram()  # read by the metrics collector at scrape time

    async def start(self, listens: list[Listen]) -> None:
        servers, addresses = await open_listeners(
            listens, lambda: _Connection(self), socket_mode=self.socket_mode,
            socket_group=self.socket_group)
        self.servers.extend(servers)
        self.addresses.extend(addresses)
        log.info("policyd listening on %s", ", ".join(self.addresses))

    def admit(self, connection: _Connection, transport: asyncio.Transport) -> bool:
        if self.stopping or len(self._connections) >= self.max_connections:
            self.refused += 1
            log.warning("refusing a connection: %s", "stopping" if self.stopping
                        else f"{len(self._connections)} open")
            return False
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        inet = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        if (inet and peer and not self.allow_remote
                and not ipaddress.ip_address(peer[0]).is_loopback):
            self.refused += 1
            log.warning("refusing policy client %s: not loopback", peer[0])
            return False
        self._next_id += 1
        connection.id = self._next_id
        self._connections[connection.id] = connection
        return True

    def forget(self, connection: _Connection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            self.agent.forget_connection(connection.id)
        if self.stopping and not self._connections:
            self._drained.set()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; answer what was received; close every connection."""
        self.stopping = True
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        for connection in list(self._connections.values()):
            if not connection.parser.pending:
                loop.call_later(STOP_LINGER, connection.close_if_idle)
        if self._connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.abort()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
