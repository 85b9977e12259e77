"""Shared helpers for the reliability tests (docs/testing.md R3, R6, R7, R8, B6).

Snapshots come from ``small_esp()``; servers are real ``PolicyServer``s on
loopback sockets inside the test's own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Iterable, Mapping

from poolwarden.adapters.listeners import Listen
from poolwarden.core.model import EgressIp, Inventory, IpState, Tier
from poolwarden.core.snapshot import RoutingSettings, Snapshot, build_snapshot
from poolwarden.services.routing.policy_agent import PolicyAgent
from poolwarden.services.routing.policyd import PolicyServer
from poolwarden.testing.builders import small_esp
from poolwarden.wire.postfix_policy import MAX_REPLY, PolicyRequest

CLOCK = 1000.0

# a deferral Postfix understands: 4xx with a 4.x.x enhanced code and some text after it
DEFER_RE = re.compile(r"^(4\d\d|DEFER_IF_PERMIT) 4\.\d{1,3}\.\d{1,3} \S.*$")


def snapshot(tiers: Mapping[str, Tier] | None = None, *, inventory: Inventory | None = None,
             version: int = 1, settings: RoutingSettings | None = None) -> Snapshot:
    return build_snapshot(inventory or small_esp(), tiers=tiers or {}, dedicated_advised={},
                          settings=settings or RoutingSettings(), version=version, built_at=0)


def agent_for(snap: Snapshot | None) -> PolicyAgent:
    return PolicyAgent(lambda: snap, clock=lambda: CLOCK)


def with_ip_states(inventory: Inventory, **changes: tuple[IpState, bool]) -> Inventory:
    """A copy of ``inventory`` where IP ``a_b_c_d`` (dots as underscores) gets
    (state, blocklisted)."""
    wanted = {key.replace("_", "."): value for key, value in changes.items()}
    ips: list[EgressIp] = []
    for ip in inventory.ips:
        if ip.address in wanted:
            state, blocklisted = wanted[ip.address]
            ip = dataclasses.replace(ip, state=state, blocklisted=blocklisted)
        ips.append(ip)
    return dataclasses.replace(inventory, ips=tuple(ips))


def rcpt_attrs(recipient: str = "x@gmail.com", *, sender: str = "s@shop.example",
               instance: str = "i1", **extra: str) -> dict[str, str]:
    return {"request": "smtpd_access_policy", "protocol_state": "RCPT",
            "protocol_name": "ESMTP", "client_address": "127.0.0.1", "sender": sender,
            "recipient": recipient, "instance": instance, **extra}


def eom_attrs(instance: str = "i1", queue_id: str = "4Xq1") -> dict[str, str]:
    return {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
            "instance": instance, "queue_id": queue_id}


def rcpt(recipient: str = "x@gmail.com", **kwargs: str) -> PolicyRequest:
    return PolicyRequest(rcpt_attrs(recipient, **kwargs))


def encode_request(attrs: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    items = attrs.items() if isinstance(attrs, Mapping) else attrs
    return b"".join(f"{k}={v}\n".encode() for k, v in items) + b"\n"


def check_reply(reply: bytes) -> str:
    """Assert ``reply`` is one well-formed Postfix policy reply; return the action text."""
    assert len(reply) <= MAX_REPLY, (len(reply), reply[:80])
    assert reply.startswith(b"action="), reply[:80]
    assert reply.endswith(b"\n\n"), reply[-80:]
    body = reply[len(b"action="):-2]
    assert b"\n" not in body and b"\r" not in body and b"\0" not in body, body
    text = body.decode("utf-8")  # strict: raises on invalid UTF-8
    assert text.isprintable(), text
    assert text.strip(), "empty action"
    return text


@contextlib.asynccontextmanager
async def serving(agent: PolicyAgent, listens: Iterable[str] = ("tcp:127.0.0.1:0",),
                  **kwargs: object) -> AsyncIterator[PolicyServer]:
    server = PolicyServer(agent, **kwargs)  # type: ignore[arg-type]
    await server.start([Listen.parse(text) for text in listens])
    try:
        yield server
    finally:
        await server.stop(grace=1.0)
        await drained(server)


async def drained(server: PolicyServer, timeout: float = 3.0) -> None:
    """Wait until every connection task of ``server`` has finished its cleanup."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while server.connection_count and loop.time() < deadline:
        await asyncio.sleep(0.01)


def tcp_address(server: PolicyServer) -> tuple[str, int]:
    for address in server.addresses:
        if address.startswith("tcp:"):
            host, _, port = address[4:].rpartition(":")
            return host, int(port)
    raise AssertionError(f"no tcp address in {server.addresses}")


def unix_path(server: PolicyServer) -> str:
    for address in server.addresses:
        if address.startswith("unix:"):
            return address[5:]
    raise AssertionError(f"no unix address in {server.addresses}")


class Client:
    """One Postfix-like policy client connection (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def tcp(cls, server: PolicyServer) -> Client:
        host, port = tcp_address(server)
        return cls(*await asyncio.open_connection(host, port))

    @classmethod
    async def unix(cls, server: PolicyServer) -> Client:
        return cls(*await asyncio.open_unix_connection(unix_path(server)))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def reply(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)

    async def ask(self, attrs: Mapping[str, str], timeout: float = 5.0) -> str:
        self.send(encode_request(attrs))
        return check_reply(await self.reply(timeout))

    async def read_to_eof(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """Everything until the server closes: (bytes, whether the close was a reset)."""
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(timeout):
                while data := await self.reader.read(65536):
                    chunks.append(data)
        except ConnectionResetError:
            return b"".join(chunks), True
        return b"".join(chunks), False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def open_transactions(agent: PolicyAgent) -> set[str]:
    """The instances whose transaction the agent still holds (keyed by ``instance`` alone:
    one message's requests may come over several policy connections)."""
    return set(agent._transactions)
