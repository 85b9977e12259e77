"""The policy protocol codec: framing at every read size, bounds, problems, reply hygiene,
and the translation to and from the core (request in, decision out)."""

from __future__ import annotations

import pytest

from poolwarden.core.policy import RouteRequest
from poolwarden.core.snapshot import Action, Decision
from poolwarden.wire.postfix_policy import (
    MAX_ATTRIBUTES,
    MAX_LINE,
    MAX_VALUE,
    SPLIT_ACTION,
    ActionEncoder,
    PolicyReader,
    PolicyRequest,
    ProtocolViolation,
    cannot_decide,
    encode_action,
    route_request,
)

REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           b"client_address=127.0.0.1\nsender=a@shop.example\nrecipient=x@gmail.com\n"
           b"instance=6e83.6b0498fc.4ef70.0\nsasl_username=shop\n\n")


def feed_in_pieces(data: bytes, size: int) -> list:
    reader = PolicyReader()
    out = []
    for start in range(0, len(data), size):
        out.extend(reader.feed(data[start:start + size]))
    assert not reader.pending
    return out


@pytest.mark.parametrize("size", [4096, 128, 16, 1])
def test_requests_parse_the_same_at_every_read_size(size):
    requests = feed_in_pieces(REQUEST * 3, size)
    assert len(requests) == 3
    for r in requests:
        assert r.problem is None
        assert r.get("recipient") == "x@gmail.com"
        assert r.get("instance") == "6e83.6b0498fc.4ef70.0"
        assert r.get("missing") == ""


def test_value_may_contain_equals_and_utf8():
    (r,) = PolicyReader().feed("request=smtpd_access_policy\nsender=a=b@bücher.example\n\n"
                               .encode())
    assert r.get("sender") == "a=b@bücher.example"


def test_bounds_raise_protocol_violation():
    reader = PolicyReader()
    reader.feed(b"recipient=" + b"x" * MAX_VALUE + b"\n")  # exactly the limit is fine
    with pytest.raises(ProtocolViolation):
        PolicyReader().feed(b"recipient=" + b"x" * (MAX_VALUE + 1) + b"\n")
    with pytest.raises(ProtocolViolation):  # no newline yet, but already too long
        PolicyReader().feed(b"x" * (MAX_LINE + 1))
    many = b"".join(b"a%d=1\n" % i for i in range(MAX_ATTRIBUTES + 1))
    with pytest.raises(ProtocolViolation):
        PolicyReader().feed(many)


@pytest.mark.parametrize(("raw", "problem"), [
    (b"request=x\nsender=a\0b\n\n", "NUL"),
    (b"request=x\nsender=\xff\xfe\n\n", "UTF-8"),
    (b"request=x\nrequest=y\n\n", "repeated"),
    (b"request=x\nnovalue\n\n", "without a name"),
])
def test_well_framed_bad_requests_carry_a_problem(raw, problem):
    reader = PolicyReader()
    (r,) = reader.feed(raw + REQUEST)[:1]
    assert r.problem is not None and problem in r.problem
    # the next request on the same connection is clean
    assert reader.feed(REQUEST)[0].problem is None


@pytest.mark.parametrize("text", ["FILTER pw-127-0-0-11:", "HOLD tenant\nx is\r suspended\0",
                                  "DUNNO " + "é" * 600, "action=OK\n\naction=OK"])
def test_encoded_reply_is_one_clean_line(text):
    reply = encode_action(text)
    assert reply.startswith(b"action=") and reply.endswith(b"\n\n")
    body = reply[len(b"action="):-2]
    assert b"\n" not in body and b"\r" not in body and b"\0" not in body
    assert len(reply) <= 512
    body.decode("utf-8")


# -- to and from the core: the request the core routes, the action a decision becomes ------


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"recipient": "x@gmail.com", "sender": "a@shop.example", "sasl_username": "shop",
      "client_address": "127.0.0.1", "instance": "i"},
     RouteRequest(recipient="x@gmail.com", sender="a@shop.example", sasl_username="shop",
                  client_address="127.0.0.1")),
    ({"recipient": "x@gmail.com", "sender": "", "sasl_username": "", "client_address": ""},
     RouteRequest(recipient="x@gmail.com")),  # empty attributes count as absent
    ({}, RouteRequest(recipient="")),
])
def test_route_request_is_the_core_request(attrs, expected):
    built = route_request(PolicyRequest(attrs))
    assert built == expected and type(built) is RouteRequest
    assert (built.tenant, built.mx_hosts) == (None, ())


@pytest.mark.parametrize(("decision", "action"), [
    (Decision(Action.ROUTE, "127.0.0.11", "shared-good", "why", "shared:shared"),
     "FILTER pw-127-0-0-11:"),
    (Decision(Action.ROUTE, "2001:db8::1", "p", "why", "r"), "FILTER pw-2001-db8--1:"),
    (Decision(Action.HOLD, None, None, "tenant t is suspended", "tier:suspended"),
     "HOLD tenant t is suspended"),
    (Decision(Action.REJECT, None, None, "tenant t is\noff the platform", "tier:off-platform"),
     "REJECT 5.7.1 tenant t is off the platform"),
    (Decision(Action.DEFER, None, None, "no tenant matches x@y", "unknown_tenant"),
     "451 4.3.5 poolwarden: no tenant matches x@y"),
    (Decision(Action.ROUTE, None, None, "a route without an IP", "r"),
     "451 4.3.5 poolwarden: a route without an IP"),  # never a FILTER to nowhere
])
def test_action_encoder(decision, action):
    encoder = ActionEncoder()
    assert encoder.action(decision) == action
    assert encoder.action(decision) == action  # the cached FILTER text is the same text


def test_the_answers_that_are_not_decisions():
    assert SPLIT_ACTION.startswith("DEFER_IF_PERMIT 4.7.1 ") and SPLIT_ACTION.isprintable()
    assert cannot_decide("internal error") == (
        "451 4.3.5 poolwarden: internal error, try again later")
    assert cannot_decide("x\n" * 200).count("\n") == 0
