"""The agent's mapping of decisions to Postfix actions and its per-transaction splitting."""

from __future__ import annotations

from poolwarden.core.model import Tier
from poolwarden.core.snapshot import RoutingSettings, build_snapshot
from poolwarden.services.routing.policy_agent import PolicyAgent, transport_name
from poolwarden.testing.builders import GOOD_POOL_IPS, NEW_POOL_IPS, small_esp
from poolwarden.wire.postfix_policy import PolicyRequest


def agent(tiers=None):
    snap = build_snapshot(small_esp(), tiers=tiers or {}, dedicated_advised={},
                          settings=RoutingSettings(), version=7, built_at=0.0)
    return PolicyAgent(lambda: snap, clock=lambda: 1000.0)


def rcpt(recipient, *, sender="news@news.example", instance="i1", **extra):
    attrs = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "sender": sender,
             "recipient": recipient, "instance": instance, **extra}
    return PolicyRequest(attrs)


def eom(instance="i1", queue_id="4Xq1"):
    return PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE",
                          "instance": instance, "queue_id": queue_id})


def filters(ips):
    return {f"FILTER {transport_name(ip)}:" for ip in ips}


def test_transport_names():
    assert transport_name("127.0.0.11") == "pw-127-0-0-11"
    assert transport_name("2001:db8::1") == "pw-2001-db8--1"


def test_mixed_routes_in_one_transaction_are_split():
    a = agent({"news": Tier.GOOD})  # major-via-shared
    first = a.answer(rcpt("x@gmail.com"))
    assert first in filters(GOOD_POOL_IPS)
    other = a.answer(rcpt("y@smallbiz.example"))
    assert other.startswith("DEFER_IF_PERMIT 4.7.1")
    again = a.answer(rcpt("z@yahoo.com"))  # same pool as the first: same IP, not split
    assert again == first
    # the client re-sends the deferred recipient in a new transaction: it gets its own route
    assert a.answer(rcpt("y@smallbiz.example", instance="i2")) == "FILTER pw-127-0-0-22:"


def test_same_pool_recipients_share_the_first_ip():
    a = agent()
    answers = {a.answer(rcpt(f"u{i}@gmail.com", sender="s@shop.example")) for i in range(30)}
    assert len(answers) == 1 and answers <= filters(NEW_POOL_IPS)


def test_suspended_tenant_is_held_and_carries_its_release_route():
    a = agent({"shop": Tier.SUSPENDED})
    held = a.answer(rcpt("x@gmail.com", sender="s@shop.example"))
    assert held.startswith("HOLD ") and "suspended" in held
    assert a.answer(eom()) in filters(NEW_POOL_IPS)  # risky: the tier suspension recovers to
    assert list(a.bound) == [("i1", "4Xq1")]


def test_end_of_message_without_hold_says_dunno_and_forgets_the_transaction():
    a = agent()
    a.answer(rcpt("x@gmail.com", sender="s@bank.example"))
    assert a.answer(eom()) == "DUNNO"
    assert a.answer(rcpt("y@gmail.com", sender="s@shop.example")).startswith("FILTER")


def test_off_platform_is_rejected_and_unknown_deferred():
    a = agent({"bank": Tier.OFF_PLATFORM})
    assert a.answer(rcpt("x@gmail.com", sender="s@bank.example")).startswith("REJECT 5.7.1")
    unknown = a.answer(rcpt("x@gmail.com", sender="s@nobody.example"))
    assert unknown.startswith("451 4.3.5") and "nobody.example" in unknown


def test_states_without_a_recipient_defer_and_bad_requests_defer():
    a = agent()
    data = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "DATA"})
    assert a.answer(data).startswith("451 4.3.5")
    vrfy = PolicyRequest({"request": "smtpd_access_policy", "protocol_state": "VRFY"})
    assert a.answer(vrfy) == "DUNNO"
    assert a.answer(PolicyRequest({"protocol_state": "RCPT"})).startswith("451 4.3.5")
    assert a.answer(PolicyRequest({}, problem="NUL byte")).startswith("451 4.3.5")


def test_decisions_are_logged_with_snapshot_version():
    a = agent()
    a.answer(rcpt("x@gmail.com", sender="s@bank.example"))
    (logged,) = a.decision_log
    assert (logged.tenant, logged.ip, logged.snapshot_version, logged.action) == (
        "bank", "127.0.0.21", 7, "FILTER")


def test_reroute_context_never_refuses_mail_postfix_already_has():
    a = agent({"bank": Tier.OFF_PLATFORM})
    moved = a.answer(rcpt("x@gmail.com", sender="s@bank.example", policy_context="reroute"))
    assert moved.startswith("451 4.7.1")  # a 5xx here would bounce re-queued mail
    routed = a.answer(rcpt("y@gmail.com", sender="news@news.example", instance="i2",
                           policy_context="reroute"))
    assert routed.startswith("FILTER pw-")  # routable mail gets today's route


def test_recipient_domains_are_handed_to_the_mx_rollup():
    a = agent()
    a.answer(rcpt("x@Corp.Example"))
    a.answer(rcpt("y@gmail.com", instance="i2"))
    assert {d.lower() for d in a.recipient_domains} == {"corp.example", "gmail.com"}
