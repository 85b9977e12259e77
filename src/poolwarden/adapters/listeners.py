"""Opening listening sockets for our servers: ``tcp:HOST:PORT`` and ``unix:PATH`` alike.

Shared by the routing agent (policyd) and the feedback LMTP server: parses a
listen address, opens the asyncio server for a protocol factory and gives a
unix socket its mode and group (Postfix connects as the postfix user).
Knows nothing about what is spoken on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("poolwarden.listen")

# asyncio accepts up to `backlog` connections per loop turn and the kernel queues as many:
# its default of 100 lets a burst of connections fill the queue before Postfix's get in
BACKLOG = 1024


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


async def open_listeners(listens: list[Listen], factory: Callable[[], asyncio.BaseProtocol],
                         *, socket_mode: int, socket_group: str | None,
                         ) -> tuple[list[asyncio.Server], list[str]]:
    """Open every listener; returns the servers and their actual addresses."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    addresses: list[str] = []
    for where in listens:
        if where.kind == "unix":
            path = Path(where.path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server = await loop.create_unix_server(factory, path=str(path), backlog=BACKLOG)
            secure_socket(path, socket_mode, socket_group)
            addresses.append(f"unix:{path}")
        else:
            server = await loop.create_server(factory, host=where.host, port=where.port,
                                              reuse_address=True, backlog=BACKLOG)
            sock = server.sockets[0].getsockname()
            addresses.append(f"tcp:{sock[0]}:{sock[1]}")
        servers.append(server)
    return servers, addresses


def secure_socket(path: Path, mode: int, group: str | None) -> None:
    os.chmod(path, mode)
    if group:
        try:
            import grp

            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError):
            log.warning("cannot give %s to group %s; mode %o", path, group, mode)
