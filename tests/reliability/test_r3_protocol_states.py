"""R3 — every protocol state the agent is asked in (RELIABILITY.md R3, A1; SMTPD_POLICY_README).

Postfix names the SMTP stage in ``protocol_state``: CONNECT, EHLO, HELO, MAIL, RCPT,
DATA, END-OF-MESSAGE, VRFY or ETRN. Only RCPT can be routed. DUNNO is answered only
where it lets nothing through unrouted: VRFY and ETRN (no message) and
END-OF-MESSAGE (the route was set at RCPT and is kept in the queue file). Every
other state, a missing one and an unknown one means the check sits where no
recipient is known (a misplaced ``check_policy_service``): DUNNO there would let the
message continue without a route, so it gets 451, is counted, and is logged once.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from poolwarden.wire.postfix_policy import PolicyRequest

from .support import DEFER_RE, Client, agent_for, check_reply, rcpt_attrs, serving, snapshot

DEFERRED_STATES = ["CONNECT", "EHLO", "HELO", "MAIL", "DATA", None, "", "BDAT", "rcpt",
                   "RCPT ", "END-OF-DATA", "X" * 300]
HARMLESS_STATES = ["VRFY", "ETRN", "END-OF-MESSAGE"]


def request(state: str | None) -> dict[str, str]:
    attrs = rcpt_attrs(sender="s@bank.example", instance="st")
    if state is None:
        del attrs["protocol_state"]
    else:
        attrs["protocol_state"] = state
    return attrs


@pytest.mark.parametrize("state", DEFERRED_STATES, ids=repr)
def test_a_state_without_a_route_is_deferred_over_the_socket(state, caplog):
    agent = agent_for(snapshot())

    async def scenario() -> tuple[str, str]:
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                first = await client.ask(request(state))
                await client.ask(request(state))  # the same again: counted, not re-logged
                # the connection stays usable: the next RCPT is routed
                routed = await client.ask(rcpt_attrs(sender="s@bank.example", instance="n"))
                return first, routed
            finally:
                await client.close()

    with caplog.at_level(logging.ERROR, logger="poolwarden.policyd"):
        first, routed = asyncio.run(scenario())
    assert DEFER_RE.match(first) and first.startswith("451 4.3.5"), first
    assert "FILTER" not in first and "DUNNO" not in first
    assert routed == "FILTER pw-127-0-0-21:"
    assert sum(agent.stats.errors.values()) == 2 and agent.stats.bad_requests == 2
    logged = [r for r in caplog.records if "protocol state" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "X" * 50 not in logged[0].getMessage()  # peer text is not echoed into the log


@pytest.mark.parametrize("state", HARMLESS_STATES)
def test_dunno_only_where_postfix_lets_nothing_through_unrouted(state):
    agent = agent_for(snapshot())
    assert agent.answer(PolicyRequest(request(state))) == "DUNNO"
    assert not agent.stats.errors


def test_every_postfix_state_is_covered_here():
    """A new state in the agent's table must come with its test."""
    from poolwarden.services.routing import policy_agent

    named = {s for s in DEFERRED_STATES if s} | set(HARMLESS_STATES) | {"RCPT"}
    assert named >= policy_agent.POSTFIX_STATES
    assert policy_agent.HARMLESS_STATES | {"END-OF-MESSAGE"} == set(HARMLESS_STATES)


def test_unknown_states_do_not_grow_the_cause_table():
    agent = agent_for(snapshot())
    for n in range(500):
        reply = agent.answer(PolicyRequest(request(f"STATE{n}")))
        assert reply.startswith("451 4.3.5")
        check_reply(b"action=" + reply.encode() + b"\n\n")
    assert len(agent.stats.errors) == 1
