"""S7 — connection exhaustion cannot stop routing (RELIABILITY.md S7; A1).

On a real loopback socket: one peer opens and holds 2,000 idle connections (twice
``max_connections``) plus slow-loris connections, while a Postfix-like client from
the same address keeps asking; every one of its requests is answered with a route,
the open connections stay within both limits, idle ones are closed after
``idle_timeout``, refusals are counted by reason, shown as a metric and logged at
most once a minute. The real-Postfix version is ``tests/e2e/test_s7_exhaustion.py``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket

import pytest

from poolwarden.services.queries.metrics import MetricSources, node_registry
from poolwarden.services.routing.policyd import PolicyServer

from .support import Client, agent_for, rcpt_attrs, serving, snapshot, tcp_address

GOOD = rcpt_attrs(sender="s@bank.example", instance="good")
ROUTE = "FILTER pw-127-0-0-21:"


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (8192, hard))


async def open_idle(host: str, port: int, count: int,
                    source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` raw connections from ``source`` that never send anything."""
    loop = asyncio.get_running_loop()
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        held.append(sock)
        if len(held) % 100 == 0:
            await asyncio.sleep(0)  # let the server accept
    return held


def test_2000_idle_connections_from_one_peer_do_not_lock_out_an_active_client(caplog):
    agent = agent_for(snapshot())

    async def scenario() -> tuple[PolicyServer, list[str], int]:
        async with serving(agent, max_connections=1000, max_connections_per_peer=250,
                           request_timeout=1.0) as server:
            host, port = tcp_address(server)
            postfix = await Client.tcp(server)  # an smtpd's connection, opened first
            answers: list[str] = []
            stop = asyncio.Event()

            async def keep_asking() -> None:
                while not stop.is_set():
                    answers.append(await postfix.ask(GOOD, timeout=2))
                    await asyncio.sleep(0.005)

            asker = asyncio.create_task(keep_asking())
            idle = await open_idle(host, port, 2000)
            # slow-loris: a started request that never ends, on 50 more connections
            loris = await open_idle(host, port, 50)
            for sock in loris:
                sock.send(b"request=smtpd_access_policy\nprotocol_state=RCPT\n")
            await asyncio.sleep(0.3)
            peak = server.connection_count
            # a new smtpd process connecting now is admitted and answered at once
            newcomer = await Client.tcp(server)
            assert await newcomer.ask(GOOD, timeout=2) == ROUTE
            await asyncio.sleep(1.5)  # past request_timeout: the slow-loris ones are gone
            stop.set()
            await asker
            await newcomer.close()
            await postfix.close()
            for sock in idle + loris:
                sock.close()
            return server, answers, peak

    with caplog.at_level(logging.WARNING, logger="poolwarden.policyd"):
        server, answers, peak = asyncio.run(scenario())
    assert len(answers) > 20 and set(answers) == {ROUTE}  # never a 451, never a reset
    assert server.peak_per_peer <= 250 and peak <= 250
    assert server.shed["peer_limit"] >= 2050 - 250
    shed_warnings = [r for r in caplog.records if "shedding policy connections" in r.message]
    assert len(shed_warnings) == 1, [r.message for r in shed_warnings]  # once a minute


def test_the_global_limit_holds_across_peers():
    agent = agent_for(snapshot())

    async def scenario() -> PolicyServer:
        async with serving(agent, max_connections=100, max_connections_per_peer=80) as server:
            host, port = tcp_address(server)
            first = await open_idle(host, port, 80)
            second = await open_idle(host, port, 80, source="127.0.0.2")  # another peer
            await asyncio.sleep(0.2)
            assert server.connection_count == 100
            counts = server.peer_counts()
            assert counts["127.0.0.1"] <= 80 and counts["127.0.0.2"] <= 80
            client = await Client.tcp(server)
            assert await client.ask(GOOD) == ROUTE
            await client.close()
            for sock in first + second:
                sock.close()
            return server

    server = asyncio.run(scenario())
    assert server.shed.get("connection_limit", 0) >= 60


def test_silent_connections_are_shed_before_ones_that_asked():
    agent = agent_for(snapshot())

    async def scenario() -> None:
        async with serving(agent, max_connections=10, max_connections_per_peer=10) as server:
            host, port = tcp_address(server)
            talkers = [await Client.tcp(server) for _ in range(3)]
            for client in talkers:
                assert await client.ask(GOOD) == ROUTE
            silent = await open_idle(host, port, 30)  # newer, but never asked anything
            await asyncio.sleep(0.2)
            for client in talkers:  # the three that asked survive the flood
                assert await client.ask(GOOD) == ROUTE
                await client.close()
            for sock in silent:
                sock.close()

    asyncio.run(scenario())


def test_idle_connections_close_after_idle_timeout_and_active_ones_stay():
    agent = agent_for(snapshot())

    async def scenario() -> PolicyServer:
        async with serving(agent, idle_timeout=0.6) as server:
            idle = await Client.tcp(server)
            assert await idle.ask(GOOD) == ROUTE
            active = await Client.tcp(server)
            for _ in range(12):  # 1.2 s of one request every 100 ms
                assert await active.ask(GOOD) == ROUTE
                await asyncio.sleep(0.1)
            data, reset = await idle.read_to_eof(timeout=2)
            assert data == b"" and not reset  # a clean close, no reply lost
            assert await active.ask(GOOD) == ROUTE
            await active.close()
            await idle.close()
            return server

    server = asyncio.run(scenario())
    assert server.idle_closed == 1


def test_refusals_are_a_metric_and_logged_once_a_minute(caplog):
    now = [0.0]
    agent = agent_for(snapshot())
    server = PolicyServer(agent, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="poolwarden.policyd"):
        for _ in range(500):
            server._count_shed("peer_limit")
            now[0] += 0.1  # 50 s in all
        now[0] += 15
        server._count_shed("connection_limit")
    warnings = [r.message for r in caplog.records if "shedding" in r.message]
    assert len(warnings) == 2
    assert "1 peer_limit" in warnings[0]
    assert "499 peer_limit" in warnings[1] and "1 connection_limit" in warnings[1]
    registry, _ = node_registry(MetricSources(connections=lambda: server))
    assert registry.get_sample_value("poolwarden_policy_connections_refused_total",
                                     {"reason": "peer_limit"}) == 500
    assert registry.get_sample_value("poolwarden_policy_connections_open") == 0
