"""R7 — connection lifecycle and graceful stop (docs/testing.md R7; A1 protocol, max_idle,
request_limit).

Real ``PolicyServer`` on loopback (TCP and a unix socket), clients as Postfix
behaves: persistent connections carrying many transactions, or one request per
connection (``request_limit=1``), closing whenever they like. The server must
never close a healthy connection on its own, and ``stop()`` must answer every
request that was fully sent before it began, without a reset mid-reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import tempfile

from poolwarden.adapters.listeners import Listen
from poolwarden.core.model import Tier
from poolwarden.services.routing.policy_agent import PolicyAgent
from poolwarden.services.routing.policyd import PolicyServer
from poolwarden.wire.postfix_policy import PolicyReader

from .support import (
    CLOCK,
    Client,
    agent_for,
    check_reply,
    drained,
    encode_request,
    eom_attrs,
    open_transactions,
    rcpt_attrs,
    serving,
    snapshot,
    tcp_address,
)

TENANT_SENDERS = ("s@shop.example", "s@bank.example", "s@news.example", "s@law.example")
RECIPIENTS = ("gmail.com", "smallbiz.example", "yahoo.com", "outlook.com", "corp.example")


def conversation(transactions: int, per_transaction: int) -> list[bytes]:
    """Requests as Postfix sends them: RCPTs of one instance, a DATA, an END-OF-MESSAGE.

    Every fourth RCPT comes from an unknown sender carrying its own sequence number,
    so its 451 reply names the request it answers (an ordering witness)."""
    out: list[bytes] = []
    seq = 0
    for t in range(transactions):
        instance = f"{t:04x}.61f2d8a0.3ba4.0"
        sender = TENANT_SENDERS[t % len(TENANT_SENDERS)]
        for r in range(per_transaction - 2):
            seq += 1
            if r % 4 == 3:
                attrs = rcpt_attrs(f"w{seq}@gmail.com", sender=f"seq{seq}@unknown.example",
                                   instance=instance)
            else:
                domain = RECIPIENTS[(t + r) % len(RECIPIENTS)]
                attrs = rcpt_attrs(f"u{seq}@{domain}", sender=sender, instance=instance)
            out.append(encode_request(attrs))
        seq += 1
        # a VRFY between RCPT and END-OF-MESSAGE: a state answered DUNNO (it carries no mail)
        out.append(encode_request({"request": "smtpd_access_policy", "protocol_state": "VRFY",
                                   "instance": instance}))
        seq += 1
        out.append(encode_request(eom_attrs(instance, queue_id=f"Q{t:06d}")))
    return out


def expected_replies(requests: list[bytes], tiers: dict[str, Tier]) -> list[str]:
    """What a fresh agent answers to the same sequence on one connection."""
    reference = agent_for(snapshot(tiers))
    reader = PolicyReader()
    return [reference.answer(r, 1) for r in reader.feed(b"".join(requests))]


def test_one_connection_carries_10000_requests_over_500_transactions_in_order():
    tiers = {"news": Tier.GOOD, "law": Tier.GOOD}
    requests = conversation(500, 20)
    assert len(requests) == 10_000
    expected = expected_replies(requests, tiers)
    agent = agent_for(snapshot(tiers))

    async def scenario() -> list[str]:
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                async def send_all() -> None:
                    for start in range(0, len(requests), 250):  # pipelined, in bursts
                        client.send(b"".join(requests[start:start + 250]))
                        await client.writer.drain()

                sender = asyncio.create_task(send_all())
                replies = [check_reply(await client.reply(timeout=10)) for _ in requests]
                await sender
                assert server.connection_count == 1  # still open after 10,000 requests
                # one more request on the same connection still works
                assert (await client.ask(rcpt_attrs(sender="s@bank.example", instance="z"))
                        == "FILTER pw-127-0-0-21:")
                return replies
            finally:
                await client.close()

    replies = asyncio.run(scenario())
    assert replies == expected
    kinds = {r.split(" ", 1)[0] for r in replies}
    assert {"FILTER", "DEFER_IF_PERMIT", "451", "DUNNO"} <= kinds
    # the ordering witnesses: every unknown-sender reply names its own request
    witnesses = [(i, r) for i, r in enumerate(replies) if "seq" in r]
    assert len(witnesses) == 500 * 4
    for index, reply in witnesses:
        assert f"seq{index + 1}@unknown.example" in reply, (index, reply)
    assert agent.stats.by_action.get("DUNNO") == 500 * 2  # VRFY + END-OF-MESSAGE
    # every END-OF-MESSAGE evicted its transaction; only the last, never ended, remains
    assert open_transactions(agent) == {"z"}


def test_client_closing_mid_request_does_not_disturb_other_connections(caplog):
    caplog.set_level(logging.INFO, logger="poolwarden")
    agent = agent_for(snapshot())

    async def scenario() -> None:
        async with serving(agent) as server:
            steady = await Client.tcp(server)
            try:
                assert (await steady.ask(rcpt_attrs(sender="s@bank.example", instance="s0"))
                        == "FILTER pw-127-0-0-21:")
                # A: half a request, then a clean close (FIN)
                a = await Client.tcp(server)
                a.send(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsend")
                await a.writer.drain()
                # B: an open transaction, then half of the next request, then a reset (RST)
                b = await Client.tcp(server)
                assert (await b.ask(rcpt_attrs(instance="b1"))).startswith("FILTER")
                b.send(encode_request(rcpt_attrs(instance="b1"))[:40])
                await b.writer.drain()
                # C: a full request sent, closed before reading the reply
                c = await Client.tcp(server)
                c.send(encode_request(rcpt_attrs(instance="c1")))
                await c.writer.drain()
                await asyncio.sleep(0.05)
                await a.close()
                b.writer.transport.abort()
                await c.close()
                for n in range(200):
                    action = await steady.ask(rcpt_attrs(f"u{n}@gmail.com",
                                                         sender="s@bank.example",
                                                         instance=f"s{n // 10}"))
                    assert action == "FILTER pw-127-0-0-21:"
                await asyncio.sleep(0.1)
                assert server.connection_count == 1
                # a closed connection does not end its transactions: Postfix may go on with
                # the same message over another connection (B's and C's stay; A had none)
                assert open_transactions(agent) == {"b1", "c1"} | {f"s{n}" for n in range(20)}
                assert server.violations == 0
            finally:
                await steady.close()

    asyncio.run(scenario())
    # Postfix closes connections whenever it likes: that is not an error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_request_limit_1_a_new_connection_per_request_500_times():
    agent = agent_for(snapshot())

    async def scenario() -> None:
        async with serving(agent) as server:
            for n in range(500):
                client = await Client.tcp(server)
                try:
                    sender = ("s@bank.example", "s@shop.example")[n % 2]
                    action = await client.ask(rcpt_attrs(f"u{n}@gmail.com", sender=sender,
                                                         instance=f"i{n}"))
                    if n % 2 == 0:
                        assert action == "FILTER pw-127-0-0-21:"
                    else:
                        assert action in {"FILTER pw-127-0-0-13:", "FILTER pw-127-0-0-14:"}
                finally:
                    await client.close()
            await asyncio.sleep(0.1)
            assert server.connection_count == 0  # nothing leaks per connection
            assert server.refused == 0
            # one message whose requests each come on a new connection keeps one route:
            # the second recipient needs another route and is split off, END-OF-MESSAGE
            # on a third connection ends the transaction
            answers = []
            for attrs in (rcpt_attrs("x@gmail.com", sender="s@news.example", instance="m"),
                          rcpt_attrs("y@smallbiz.example", sender="s@news.example",
                                     instance="m"),
                          eom_attrs(instance="m")):
                client = await Client.tcp(server)
                try:
                    answers.append(await client.ask(attrs))
                finally:
                    await client.close()
            assert answers[0] in {"FILTER pw-127-0-0-13:", "FILTER pw-127-0-0-14:"}
            assert answers[1].startswith("DEFER_IF_PERMIT 4.7.1"), answers
            assert answers[2] == "DUNNO"
            assert "m" not in open_transactions(agent)

    asyncio.run(scenario())
    assert sum(agent.stats.by_action.values()) == 503


def test_idle_connections_are_never_closed_by_the_server():
    agent = agent_for(snapshot())

    async def scenario() -> None:
        async with serving(agent, request_timeout=0.5) as server:
            used = await Client.tcp(server)  # answered once, then idle
            silent = await Client.tcp(server)  # never sent anything yet
            try:
                assert (await used.ask(rcpt_attrs(instance="1"))).startswith("FILTER")
                await asyncio.sleep(2.0)  # 4 × request_timeout
                assert server.connection_count == 2
                assert not used.reader.at_eof() and not silent.reader.at_eof()
                assert (await used.ask(rcpt_attrs(instance="2"))).startswith("FILTER")
                assert (await silent.ask(rcpt_attrs(instance="3"))).startswith("FILTER")
            finally:
                await used.close()
                await silent.close()

    asyncio.run(scenario())


REQUEST = encode_request(rcpt_attrs(sender="s@bank.example"))


async def stop_under_load(clients: int, answered_before_stop: int,
                          extra_yields: int) -> list[dict[str, int]]:
    """``clients`` Postfix-like clients send back to back; stop() begins mid-stream."""
    agent = agent_for(snapshot())
    server = PolicyServer(agent)
    await server.start([Listen.parse("tcp:127.0.0.1:0")])
    host, port = tcp_address(server)
    stop_began = asyncio.Event()
    answered = 0

    async def client() -> dict[str, int]:
        nonlocal answered
        reader, writer = await asyncio.open_connection(host, port)
        outcome = {"sent_before_stop": 0, "answered": 0, "reset": 0, "partial": 0, "eof": 0}
        try:
            while True:
                writer.write(REQUEST)
                # asyncio wrote straight to the socket: the request is fully sent
                if writer.transport.get_write_buffer_size() == 0 and not stop_began.is_set():
                    outcome["sent_before_stop"] += 1
                try:
                    reply = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
                except asyncio.IncompleteReadError as exc:
                    outcome["partial"] = len(exc.partial)
                    outcome["eof"] = 1
                    break
                except ConnectionResetError:
                    outcome["reset"] = 1
                    break
                assert check_reply(reply) == "FILTER pw-127-0-0-21:"
                outcome["answered"] += 1
                answered += 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        return outcome

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    while answered < answered_before_stop:
        await asyncio.sleep(0)
    for _ in range(extra_yields):  # vary where in the clients' cycle stop() lands
        await asyncio.sleep(0)
    stop_began.set()
    await server.stop(grace=2.0)
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    await drained(server)
    return outcomes


def test_stop_while_8_clients_send_answers_everything_sent_before_stop():
    """Ten rounds of: 8 clients sending back to back, stop() at a different point each time."""
    failures = []
    for round_ in range(10):
        outcomes = asyncio.run(stop_under_load(8, 400 + 100 * round_, round_))
        for n, outcome in enumerate(outcomes):
            unanswered = outcome["sent_before_stop"] - outcome["answered"]
            # a reset is only wrong when a reply was still owed (or cut): a request sent
            # after stop() began may meet a closed socket
            closed = outcome["eof"] or outcome["reset"]
            if outcome["partial"] or not closed or unanswered > 0:
                failures.append((round_, n, outcome))
    assert not failures, (
        f"{len(failures)} of 80 clients lost a request sent before stop() began, got a cut "
        f"reply or were not closed: {failures[:4]}")


def test_stop_answers_a_request_already_in_the_socket_when_stop_begins():
    """The deterministic form of the case above: the request is fully written to the
    server's socket, then stop() begins before the event loop ran the server's read."""
    agent = agent_for(snapshot())

    async def scenario() -> tuple[bytes, bool]:
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                assert await client.ask(rcpt_attrs(instance="1")) != ""  # an idle, used link
                client.send(REQUEST)
                assert client.writer.transport.get_write_buffer_size() == 0  # fully sent
                await server.stop(grace=2.0)  # begins with no await in between
                return await client.read_to_eof(timeout=3)
            finally:
                await client.close()

    data, reset = asyncio.run(scenario())
    assert not reset, "connection reset instead of an answer"
    assert data == b"action=FILTER pw-127-0-0-21:\n\n", data


def test_unix_socket_serves_and_has_mode_0660():
    agent = agent_for(snapshot())
    with tempfile.TemporaryDirectory(prefix="pw-r7-") as directory:
        path = os.path.join(directory, "policy.sock")

        async def scenario() -> None:
            async with serving(agent, listens=(f"unix:{path}", "tcp:127.0.0.1:0")) as server:
                mode = stat.S_IMODE(os.stat(path).st_mode)
                assert stat.S_ISSOCK(os.stat(path).st_mode)
                assert mode == 0o660, oct(mode)
                client = await Client.unix(server)
                try:
                    for n in range(100):
                        assert (await client.ask(rcpt_attrs(sender="s@bank.example",
                                                            instance=f"i{n // 5}"))
                                == "FILTER pw-127-0-0-21:")
                finally:
                    await client.close()

        asyncio.run(scenario())


def test_snapshotless_agent_keeps_connections_too():
    """An agent with nothing to route from still keeps the connection (451s, no close)."""
    agent = PolicyAgent(lambda: None, clock=lambda: CLOCK)

    async def scenario() -> None:
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                for n in range(50):
                    assert (await client.ask(rcpt_attrs(instance=f"i{n}"))).startswith("451")
                assert server.connection_count == 1
            finally:
                await client.close()

    asyncio.run(scenario())


MAX_IDLE = 0.3  # smtpd_policy_service_max_idle, scaled down (Postfix: 300 s)
MAX_TTL = 1.0  # smtpd_policy_service_max_ttl, scaled down (Postfix: 1000 s)
CHURN_CLIENTS = 100
CHURN_FOR = 4.0  # seconds of churn


async def postfix_like_client(server: PolicyServer, c: int, until: float,
                              tally: dict[str, int]) -> None:
    """One smtpd's policy client: a persistent connection carrying transactions, closed
    by the client after ``MAX_IDLE`` without a request or after ``MAX_TTL`` of age (at a
    transaction boundary, as Postfix does), then reopened for the next message."""
    loop = asyncio.get_running_loop()
    t = 0
    while loop.time() < until:
        client = await Client.tcp(server)
        opened = loop.time()
        tally["connections"] += 1
        try:
            while loop.time() < until:
                instance = f"c{c}.t{t}"
                t += 1
                sender = TENANT_SENDERS[(c + t) % 2]  # bank (dedicated) or shop (pool)
                action = await client.ask(rcpt_attrs(f"u{c}.{t}@gmail.com", sender=sender,
                                                     instance=instance))
                want = ({"FILTER pw-127-0-0-21:"} if sender == "s@bank.example"
                        else {"FILTER pw-127-0-0-13:", "FILTER pw-127-0-0-14:"})
                assert action in want, (sender, action)
                assert await client.ask(eom_attrs(instance)) == "DUNNO"
                tally["answered"] += 2
                if loop.time() - opened >= MAX_TTL:
                    tally["ttl_closes"] += 1
                    break
                # a quiet smtpd (even clients) sometimes pauses past max_idle, and Postfix
                # then closes; a busy one (odd) keeps its connection until max_ttl
                pause = ((0.0, 0.02, 0.05, MAX_IDLE + 0.05)[t % 4] if c % 2 == 0
                         else (0.0, 0.02, 0.05)[t % 3])
                if pause > MAX_IDLE:
                    tally["idle_closes"] += 1
                    await asyncio.sleep(pause)
                    break
                await asyncio.sleep(pause)
            # the server must not have closed it first: nothing, no EOF, is pending
            assert not client.reader.at_eof(), "the agent closed a healthy connection"
        finally:
            await client.close()


def test_reconnect_churn_at_max_idle_and_max_ttl_across_100_connections(caplog):
    """100 connections open and close as Postfix's max_idle and max_ttl make them: every
    request is answered with its route, the agent never closes one first, refuses none
    (100 from one peer is under the per-peer cap), logs no error, leaks no connection or
    transaction state, and its idle timeout (above max_idle) never fires on them."""
    agent = agent_for(snapshot())
    tally = {"connections": 0, "answered": 0, "ttl_closes": 0, "idle_closes": 0}

    async def scenario() -> None:
        async with serving(agent, idle_timeout=MAX_IDLE * 3) as server:
            until = asyncio.get_running_loop().time() + CHURN_FOR
            await asyncio.wait_for(asyncio.gather(
                *(postfix_like_client(server, c, until, tally)
                  for c in range(CHURN_CLIENTS))), CHURN_FOR + 30)
            await drained(server)
            assert server.connection_count == 0  # every closed connection was released
            assert server.refused == 0
            assert server.peak_per_peer >= CHURN_CLIENTS // 2  # they really overlapped

    asyncio.run(scenario())
    # every client went through several lifetimes, by both of Postfix's limits
    assert tally["connections"] >= 3 * CHURN_CLIENTS, tally
    assert tally["ttl_closes"] >= CHURN_CLIENTS and tally["idle_closes"] >= CHURN_CLIENTS, tally
    assert not open_transactions(agent)  # every END-OF-MESSAGE ended its transaction
    assert sum(agent.stats.by_action.values()) == tally["answered"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
