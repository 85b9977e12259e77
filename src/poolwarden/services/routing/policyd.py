"""policyd: the asyncio server that speaks the Postfix policy protocol to Postfix.

A thin ``asyncio.Protocol`` around ``PolicyAgent``: persistent connections on
a unix socket (mode 0660) and/or TCP on loopback; bytes go through the sans-io
``PolicyReader`` and each complete request is answered at once, in order,
inside ``data_received`` (no task or await per request).
Bounds, so that no local process can take the agent away from Postfix:

* a request must complete within ``request_timeout`` once it has started
  (slowloris); protocol violations close the connection without a reply;
* a connection idle longer than ``idle_timeout`` is closed: set just above
  Postfix's ``smtpd_policy_service_max_idle`` (300 s), so Postfix closes its own
  idle connections first and only a client that is not Postfix meets it;
* at most ``max_connections`` open and ``max_connections_per_peer`` from one peer
  (the TCP client's address, the unix client's uid). A new connection over a limit
  is never refused: the least recently active connection of that peer (or of all)
  is shed instead, those that never sent a request first. Refusing would hand the
  listener to whoever holds it: Postfix reconnects for each smtpd process, and a
  flood of idle connections would turn every RCPT into 451. Postfix retries a
  request whose connection was shed on a new one, so shedding costs it nothing;
* non-loopback TCP peers are refused unless allowed.

Shed and refused connections are counted by reason (``shed``: metrics and the
alert) and logged at most once a minute. ``stop()`` stops accepting, answers
every request already received, then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from time import monotonic, perf_counter
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
# Postfix's smtpd_policy_service_max_idle default is 300 s: close a little after it
DEFAULT_IDLE_TIMEOUT = 330.0
DEFAULT_PER_PEER = 250
SHED_LOG_EVERY = 60.0  # seconds between two warnings about shed or refused connections
_UCRED = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


class Answerer(Protocol):
    """What the server asks: the routing agent, or anything that answers like it."""

    def answer(self, request: PolicyRequest, connection: int = 0) -> str: ...

    def forget_connection(self, connection: int) -> None: ...


class _Connection(asyncio.Protocol):
    __slots__ = ("answered", "id", "last", "parser", "peer", "server", "timer", "transport")

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.parser = PolicyReader()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.id = 0
        self.peer = ""
        self.last = monotonic()  # last bytes received (idle timeout, which to shed first)
        self.answered = False  # whether it ever completed a request (shed the silent first)

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
        self.last = monotonic()
        try:
            requests = self.parser.feed(data)
        except ProtocolViolation as exc:
            self.server.violations += 1
            log.warning("closing connection %d without reply: %s", self.id, exc)
            transport.abort()
            return
        if requests:
            self.answered = True
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

    def shed(self) -> None:
        """Closed to make room: a reset, nothing more is read or answered."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

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
                 socket_mode: int = 0o660, socket_group: str | None = "postfix",
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_connections_per_peer: int = DEFAULT_PER_PEER,
                 clock: Callable[[], float] = monotonic) -> None:
        self.agent = agent
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.max_per_peer = min(max_connections_per_peer, max_connections)
        self.idle_timeout = idle_timeout
        self.allow_remote = allow_remote
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.servers: list[asyncio.Server] = []
        self.addresses: list[str] = []
        self._connections: dict[int, _Connection] = {}
        self._by_peer: dict[str, dict[int, _Connection]] = {}
        self._next_id = 0
        self.stopping = False
        self._drained = asyncio.Event()
        self.refused = 0  # refused and shed connections, all reasons
        self.shed: dict[str, int] = {}  # by reason: peer_limit, connection_limit, ...
        self.idle_closed = 0
        self.violations = 0
        self.peak_per_peer = 0  # the most connections one peer held at once
        self.latency = LatencyHistogram()  # read by the metrics collector at scrape time
        self._clock = clock
        self._shed_logged_at = float("-inf")
        self._shed_unlogged: dict[str, int] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, listens: list[Listen]) -> None:
        servers, addresses = await open_listeners(
            listens, lambda: _Connection(self), socket_mode=self.socket_mode,
            socket_group=self.socket_group)
        self.servers.extend(servers)
        self.addresses.extend(addresses)
        log.info("policyd listening on %s (at most %d connections, %d per peer; idle ones "
                 "closed after %.0f s)", ", ".join(self.addresses), self.max_connections,
                 self.max_per_peer, self.idle_timeout)
        if self._sweeper is None:
            self._schedule_sweep()

    # -- admission --------------------------------------------------------------------

    def admit(self, connection: _Connection, transport: asyncio.Transport) -> bool:
        if self.stopping:
            self._count_shed("stopping")
            return False
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        inet = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet:
            address = str(peer[0]) if peer else "?"
            if (peer and not self.allow_remote
                    and not ipaddress.ip_address(address).is_loopback):
                self._count_shed("not_loopback", f"policy client {address} is not loopback")
                return False
            connection.peer = address
        else:
            connection.peer = _unix_peer(sock)
        mine = self._by_peer.setdefault(connection.peer, {})
        if len(mine) >= self.max_per_peer:
            self._shed_one(mine, "peer_limit")
        if len(self._connections) >= self.max_connections:
            self._shed_one(self._connections, "connection_limit")
        self._next_id += 1
        connection.id = self._next_id
        self._connections[connection.id] = connection
        mine[connection.id] = connection
        if len(mine) > self.peak_per_peer:
            self.peak_per_peer = len(mine)
        return True

    def _shed_one(self, among: dict[int, _Connection], reason: str) -> None:
        """Close the connection least worth keeping: one that never completed a request
        before one that did, then the longest idle. O(n) over at most max_connections,
        and only when a limit is reached."""
        victim = min(among.values(), key=lambda c: (c.answered, c.last))
        self._count_shed(reason)
        self._drop(victim)  # now: the room must be free before the new one is counted
        victim.shed()

    def _count_shed(self, reason: str, detail: str = "") -> None:
        self.refused += 1
        self.shed[reason] = self.shed.get(reason, 0) + 1
        self._shed_unlogged[reason] = self._shed_unlogged.get(reason, 0) + 1
        now = self._clock()
        if now - self._shed_logged_at < SHED_LOG_EVERY:
            return  # counted; the next warning reports it (at most one a minute)
        counts = ", ".join(f"{n} {why}" for why, n in sorted(self._shed_unlogged.items()))
        self._shed_unlogged = {}
        self._shed_logged_at = now
        log.warning("shedding policy connections (%s%s; %d open, limits %d in all and %d "
                    "per peer; logged at most once a minute)", counts,
                    f"; last: {detail}" if detail else "", len(self._connections),
                    self.max_connections, self.max_per_peer)

    # -- idle timeout ---------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        # a sweep, not a timer per connection: the hot path only stores a time stamp
        every = max(0.05, min(self.idle_timeout / 4, 30.0))
        self._sweeper = asyncio.get_running_loop().call_later(every, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        if self.stopping:
            return
        deadline = self._clock() - self.idle_timeout
        idle = [c for c in self._connections.values()
                if c.last <= deadline and not c.parser.pending]  # pending: request_timeout
        for connection in idle:
            self.idle_closed += 1
            connection.close()
        if idle:
            log.info("closed %d policy connections idle for more than %.0f s", len(idle),
                     self.idle_timeout)
        self._schedule_sweep()

    def _drop(self, connection: _Connection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            mine = self._by_peer.get(connection.peer)
            if mine is not None:
                mine.pop(connection.id, None)
                if not mine:
                    del self._by_peer[connection.peer]
            self.agent.forget_connection(connection.id)

    def forget(self, connection: _Connection) -> None:
        self._drop(connection)
        if self.stopping and not self._connections:
            self._drained.set()

    def peer_counts(self) -> dict[str, int]:
        """Open connections by peer (TCP address or ``uid:N``)."""
        return {peer: len(mine) for peer, mine in self._by_peer.items()}

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; answer what was received; close every connection."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
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


def _unix_peer(sock: object) -> str:
    """A unix client's identity: its uid (SO_PEERCRED), so Postfix (user postfix) and any
    other local user count apart."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,  # type: ignore[attr-defined]
                              _UCRED.size)
        return f"uid:{_UCRED.unpack(raw)[1]}"
    except (AttributeError, OSError):
        return "unix"
