"""R6 — reply hygiene fuzz (docs/testing.md R6; A1 "malformed reply").

Hostile tenant names, domains, reasons and recipients (newlines, CR, NUL, lone
surrogates, 10 kB strings, an embedded ``action=OK\\n\\n``) go through
``build_snapshot`` + ``PolicyAgent`` + ``encode_action`` and through the
sans-io reader; every reply must be exactly ``action=`` + one non-empty line of
printable UTF-8 + an empty line, at most 512 bytes. A reply that breaks this
makes Postfix fall back to its default action or, worse, read an injected
second reply for the next request.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolwarden.core.model import Plan, Tenant, Tier
from poolwarden.core.snapshot import Action, RoutingSettings
from poolwarden.services.routing.policy_agent import PolicyAgent
from poolwarden.testing.builders import small_esp
from poolwarden.wire.postfix_policy import (
    PolicyReader,
    PolicyRequest,
    ProtocolViolation,
    encode_action,
)

from .support import CLOCK, Client, check_reply, encode_request, serving, snapshot

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY = ["\n", "\r", "\0", "\r\n", "\n\n", "action=OK\n\n", "action=DUNNO\n\naction=OK",
         "\ud800", "\udcff", "\udfff", "\x85", "\u2028", "\u2029", "\x1b[2J", "\t", "\x7f",
         "\ufeff", "\u200b", "\xa0", "é", "💥", "%s", "{}", " ", "@", "="]

any_char = st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs", "Co"])
small_hostile = st.one_of(
    st.text(alphabet=any_char, max_size=40),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(alphabet=any_char, max_size=6)),
             max_size=12).map("".join),
)
# 10 kB and more, still made of hostile pieces
big_hostile = small_hostile.map(
    lambda s: (s + "\r\n\0action=OK\n\n\ud800") * (10_240 // (len(s) + 16) + 1))
hostile = st.one_of(small_hostile, small_hostile, big_hostile)


def reply_for(action: str) -> str:
    return check_reply(encode_action(action))


@FUZZ
@given(name=hostile, domain=hostile, sasl=hostile, recipient=hostile, sender=hostile,
       instance=hostile, problem=hostile,
       tier=st.sampled_from([Tier.SUSPENDED, Tier.OFF_PLATFORM, Tier.GOOD, Tier.NEW]),
       unknown=st.sampled_from([Action.DEFER, Action.REJECT]))
def test_agent_replies_are_one_clean_line_whatever_the_names(name, domain, sasl, recipient,
                                                             sender, instance, problem, tier,
                                                             unknown):
    name = "t" + name  # never collides with small_esp()'s tenants
    tenant = Tenant(name, Plan.SHARED, domains=(domain or "d",), sasl_usernames=(sasl or "u",))
    snap = snapshot({name: tier}, inventory=small_esp(extra_tenants=(tenant,)),
                    settings=RoutingSettings(unknown_tenant=unknown))
    agent = PolicyAgent(lambda: snap, clock=lambda: CLOCK)
    own = "someone@" + (domain or "d")
    cases: list[tuple[PolicyRequest, str | None]] = [
        # the hostile tenant by SASL (an exact lookup): its tier decides the first word
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sasl_username": sasl or "u", "recipient": "x@gmail.com",
                        "instance": instance}),
         {Tier.SUSPENDED: "HOLD", Tier.OFF_PLATFORM: "REJECT"}.get(tier, "FILTER")),
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sasl_username": sasl or "u", "recipient": recipient,
                        "instance": instance}), None),
        # and by its hostile sender domain
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sender": own, "recipient": "x@gmail.com", "instance": "i2"}), None),
        # unknown senders whose text lands in the reason
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sender": sender, "sasl_username": "no-such-user" + sasl,
                        "recipient": recipient, "instance": instance}), None),
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sender": "x@" + sender, "client_address": sender,
                        "recipient": recipient}), None),
        # a known tenant with a hostile recipient (no domain, or a strange one)
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "sender": "s@shop.example", "recipient": recipient,
                        "instance": instance}), None),
        (PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
                        "instance": instance, "queue_id": problem}), None),
        # hostile request type, and a reader problem text landing in the 451 reason
        (PolicyRequest({"request": problem, "protocol_state": "RCPT"}), "451"),
        (PolicyRequest({"request": "smtpd_access_policy"}, problem=problem), "451"),
    ]
    for request, first_word in cases:
        text = reply_for(agent.answer(request))
        if first_word is not None:
            assert text.split(" ", 1)[0] == first_word, text
    # the suspended / off-platform reason names the tenant, cleaned: still one line
    if tier in (Tier.SUSPENDED, Tier.OFF_PLATFORM):
        held = reply_for(agent.answer(cases[0][0]))
        assert "tenant" in held, held


@FUZZ
@given(text=hostile)
def test_encode_action_always_gives_one_bounded_line(text):
    reply = encode_action("451 4.3.5 " + text)
    assert check_reply(reply).startswith("451 4.3.5")
    raw = encode_action(text)
    assert raw.startswith(b"action=") and raw.endswith(b"\n\n") and len(raw) <= 512
    body = raw[7:-2]
    assert b"\n" not in body and b"\r" not in body and b"\0" not in body
    assert body.decode("utf-8").isprintable()


wire_value = st.one_of(
    st.binary(max_size=60),
    st.lists(st.sampled_from([b"\n", b"\r", b"\0", b"\xff", b"\xc3", b"\xed\xa0\x80",
                              b"action=OK\n\n", b"=", b"@", b"gmail.com", b"shop.example"]),
             max_size=10).map(b"".join),
    hostile.map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(sender=wire_value, recipient=wire_value, sasl=wire_value, extra=wire_value,
       chunk=st.integers(1, 4096))
def test_hostile_bytes_through_the_reader_and_agent_give_clean_replies(sender, recipient, sasl,
                                                                        extra, chunk):
    snap = snapshot()
    agent = PolicyAgent(lambda: snap, clock=lambda: CLOCK)
    data = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=" + sender
            + b"\nrecipient=" + recipient + b"\nsasl_username=" + sasl + b"\n" + extra
            + b"\ninstance=x\n\n")
    reader = PolicyReader()
    requests: list[PolicyRequest] = []
    try:
        for start in range(0, len(data), chunk):
            requests.extend(reader.feed(data[start:start + chunk]))
    except ProtocolViolation:
        return  # the server disconnects without a reply: nothing to check
    assert requests
    for request in requests:
        reply_for(agent.answer(request))


def test_hostile_names_over_a_real_socket():
    """A fixed hostile corpus end to end: each request gets exactly one clean reply, in order."""
    name = "evil\r\n\naction=OK\n\n\0\u2028" + "x" * 10_000
    tenant = Tenant(name, Plan.SHARED, domains=("evil.example",), sasl_usernames=("evil",))
    snap = snapshot({name: Tier.SUSPENDED}, inventory=small_esp(extra_tenants=(tenant,)))
    agent = PolicyAgent(lambda: snap, clock=lambda: CLOCK)

    async def scenario() -> None:
        async with serving(agent) as server:
            client = await Client.tcp(server)
            try:
                base = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                        "recipient": "x@gmail.com"}
                bodies = [
                    {**base, "sasl_username": "evil", "instance": "1"},
                    {**base, "sender": "a@\x1b[2J\u2028.example", "instance": "2"},
                    {**base, "sender": "action=OK", "instance": "3"},
                    {**base, "sender": "s@shop.example", "recipient": "é" * 4000},
                ]
                client.send(b"".join(encode_request(b) for b in bodies))
                replies = [check_reply(await client.reply()) for _ in bodies]
                assert replies[0].startswith("HOLD tenant evil action=OK x")
                assert replies[1].startswith("451 4.3.5") and replies[2].startswith("451 4.3.5")
                assert replies[3].startswith("451 4.3.5")  # a recipient without a domain
                # nothing more was sent: no smuggled second reply is waiting
                assert await client.ask({**base, "sender": "s@bank.example"}) \
                    == "FILTER pw-127-0-0-21:"
            finally:
                await client.close()

    asyncio.run(scenario())
