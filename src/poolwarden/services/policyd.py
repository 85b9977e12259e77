"""policyd: the asyncio server that speaks the Postfix policy protocol to Postfix.

A thin loop around ``PolicyAgent``: persistent connections on a unix socket
(mode 0660) and/or TCP on loopback; bytes go through the sans-io
``PolicyReader`` and each complete request is answered at once, in order.
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
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from poolwarden.services.policy_agent import PolicyAgent
from poolwarden.wire.postfix_policy import PolicyReader, ProtocolViolation, encode_action

log = logging.getLogger("poolwarden.policyd")

READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Listen:
    """Where to listen: ``tcp:HOST:PORT`` or ``unix:PATH``."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> Listen:
        kind, _, rest = text.partition(":")
        if kind == "unix" and rest:
            return cls("unix", path=rest)
        if kind == "tcp":
            host, _, port = rest.rpartition(":")
            if host and port.isdigit() and 0 <= int(port) < 65536:
                return cls("tcp", host=host.strip("[]"), port=int(port))
        raise ValueError(f"listen address {text!r} is not tcp:HOST:PORT or unix:PATH")


class PolicyServer:
    def __init__(self, agent: PolicyAgent, *, request_timeout: float = 10.0,
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
        self._connections: dict[int, tuple[asyncio.Task[None], PolicyReader]] = {}
        self._next_id = 0
        self._stopping = asyncio.Event()
        self.refused = 0
        self.violations = 0

    async def start(self, listens: list[Listen]) -> None:
        for where in listens:
            if where.kind == "unix":
                path = Path(where.path)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                server = await asyncio.start_unix_server(self._serve, path=str(path))
                self._secure_socket(path)
                self.addresses.append(f"unix:{path}")
            else:
                server = await asyncio.start_server(self._serve, host=where.host,
                                                    port=where.port, reuse_address=True)
                sock = server.sockets[0].getsockname()
                self.addresses.append(f"tcp:{sock[0]}:{sock[1]}")
            self.servers.append(server)
        log.info("policyd listening on %s", ", ".join(self.addresses))

    def _secure_socket(self, path: Path) -> None:
        os.chmod(path, self.socket_mode)
        if self.socket_group:
            try:
                import grp

                os.chown(path, -1, grp.getgrnam(self.socket_group).gr_gid)
            except (KeyError, PermissionError):
                log.warning("cannot give %s to group %s; mode %o", path, self.socket_group,
                            self.socket_mode)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping.is_set() or not self._admit(writer):
            self.refused += 1
            writer.close()
            return
        self._next_id += 1
        connection = self._next_id
        task = asyncio.current_task()
        assert task is not None
        parser = PolicyReader()
        self._connections[connection] = (task, parser)
        try:
            await self._loop(connection, parser, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.pop(connection, None)
            self.agent.forget_connection(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _admit(self, writer: asyncio.StreamWriter) -> bool:
        if len(self._connections) >= self.max_connections:
            log.warning("refusing a connection: %d open", len(self._connections))
            return False
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        inet = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        if (inet and peer and not self.allow_remote
                and not ipaddress.ip_address(peer[0]).is_loopback):
            log.warning("refusing policy client %s: not loopback", peer[0])
            return False
        return True

    async def _loop(self, connection: int, parser: PolicyReader,
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        agent = self.agent
        while True:
            if parser.pending:
                # a request has started: it must complete in time (slowloris bound)
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE),
                                                  self.request_timeout)
                except TimeoutError:
                    log.warning("closing connection %d: request incomplete after %.0f s",
                                connection, self.request_timeout)
                    return
            else:
                if self._stopping.is_set():
                    return
                data = await reader.read(READ_SIZE)  # idle: stop() cancels us here
            if not data:
                return
            try:
                requests = parser.feed(data)
            except ProtocolViolation as exc:
                self.violations += 1
                log.warning("closing connection %d without reply: %s", connection, exc)
                return
            if requests:
                writer.write(b"".join(encode_action(agent.answer(r, connection))
                                      for r in requests))
                await writer.drain()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; answer what was received; close every connection."""
        for server in self.servers:
            server.close()
        self._stopping.set()
        tasks = []
        for task, parser in list(self._connections.values()):
            if parser.pending:
                tasks.append(task)  # mid-request: let it finish and be answered
            else:
                task.cancel()  # idle between requests: nothing owed
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
