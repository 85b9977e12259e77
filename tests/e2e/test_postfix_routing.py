"""End to end with a real Postfix: every plan leaves from the right 127.0.0.x.

A private Postfix instance, the recording sink and ``poolwarden serve`` run in a network
namespace that only has ``lo`` (``tests.support.postfix_lab``), configured from the example
configuration and the generator in ``adapters.postfix_conf``. The sink records the source
address of every connection: that address is the egress IP Postfix used.

Covers: each plan (shared, dedicated, major-via-shared, prove-then-share before and after
graduation, private-routing listed and unlisted), can't-decide (unknown sender) and
agent-down → 451 4.3.5, mail without a FILTER never leaves, Postfix's own bounces, one
message's requests over several policy connections, and ``poolwarden postfix check|config``.
R4 and R5 have their own files.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolwarden.adapters.postfix_conf import check, main_cf, master_cf
from poolwarden.config.load import load_config
from poolwarden.main import app
from tests.e2e.support import (
    EXAMPLE,
    GMAIL,
    GOOD,
    NEW,
    SMALLBIZ,
    by_recipient,
    held,
    postfix,
    send_plan,
    start_lab,
)
from tests.support.postfix_lab import (
    PostfixLab,
    lab_unavailable,
    running_lab,
)
from tests.support.real_parts import missing


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()

PLANS = {
    "shared (tier good)": ("news@northwind.example", {GMAIL: GOOD, SMALLBIZ: GOOD}),
    "shared (tier new)": ("shop@cornerbakery.example", {GMAIL: NEW, SMALLBIZ: NEW}),
    "dedicated": ("orders@bigretail.example",
                  {GMAIL: frozenset({"127.0.0.21"}), SMALLBIZ: frozenset({"127.0.0.21"})}),
    "major-via-shared": ("trips@travelhub.example",
                         {GMAIL: NEW, SMALLBIZ: frozenset({"127.0.0.22"})}),
    "prove-then-share (not proven)": ("coach@fitclub.example",
                                      {GMAIL: frozenset({"127.0.0.23"}),
                                       SMALLBIZ: frozenset({"127.0.0.23"})}),
    "private-routing (listed domain)": ("counsel@harborlegal.example",
                                        {GMAIL: frozenset({"127.0.0.24"}),
                                         SMALLBIZ: frozenset({"127.0.0.24"})}),
    "private-routing (unlisted domain)": ("news@updates.harborlegal.example",
                                          {GMAIL: NEW, SMALLBIZ: NEW}),
    "auto (volume advice: shared)": ("hello@pixelforge.example", {GMAIL: NEW, SMALLBIZ: NEW}),
}


@postfix
@pytest.mark.parametrize("plan", list(PLANS))
def test_each_plan_leaves_from_its_ip(lab: PostfixLab, plan: str) -> None:
    sender, routes = PLANS[plan]
    send_plan(lab, sender, routes)


@postfix
def test_prove_then_share_graduates_to_the_good_pool(lab: PostfixLab) -> None:
    sender = "coach@fitclub.example"
    send_plan(lab, sender, {GMAIL: frozenset({"127.0.0.23"}),
                            SMALLBIZ: frozenset({"127.0.0.23"})})
    version = max(lab.snapshot_versions())
    lab.poolwarden("override", "fitclub", "--tier", "good", "--why", "test",
                   "--config", str(lab.config))
    lab.wait_snapshot_after(version, timeout=5)
    try:
        send_plan(lab, sender, {GMAIL: GOOD, SMALLBIZ: GOOD})
    finally:
        version = max(lab.snapshot_versions())
        lab.poolwarden("override", "fitclub", "--tier", "new", "--why", "restore",
                       "--config", str(lab.config))
        lab.wait_snapshot_after(version, timeout=5)


@postfix
def test_tenant_found_by_sasl_login_and_by_client_address(lab: PostfixLab) -> None:
    """XCLIENT LOGIN= gives smtpd a SASL login name (as after AUTH); ADDR= a client address
    (a hosting server relaying through us). The sender domain names no tenant."""
    by_sasl = lab.send("someone@elsewhere.example", (GMAIL,), sasl="travelhub")
    by_client = lab.send("someone@elsewhere.example", (SMALLBIZ,), client_address="192.0.2.10")
    assert by_sasl.accepted and by_client.accepted, (by_sasl, by_client)
    got = lab.wait_delivered(2, 20, [by_sasl.message_id, by_client.message_id])
    peers = {d.message_id: d.peer for d in got}
    assert peers[by_sasl.message_id] in NEW  # travelhub, major provider → shared-new
    assert peers[by_client.message_id] == "127.0.0.21"  # bigretail's client address


@postfix
def test_unknown_sender_gets_451_and_nothing_leaves(lab: PostfixLab) -> None:
    result = lab.send("someone@unknown-tenant.example", (GMAIL, SMALLBIZ))
    assert not result.accepted
    for rcpt in (GMAIL, SMALLBIZ):
        reply = result.rcpt_reply(rcpt)
        assert reply is not None and reply.code == 451 and reply.enhanced == "4.3.5", result
    time.sleep(1)
    assert lab.deliveries([result.message_id]) == []
    assert [m for m in lab.postqueue_json()
            if m["sender"] == "someone@unknown-tenant.example"] == []


@postfix
def test_mail_without_a_filter_is_deferred_never_sent(lab: PostfixLab) -> None:
    """Local submission skips smtpd, so no FILTER: the generated default transport keeps it."""
    sender = "local@cornerbakery.example"
    message = (f"From: <{sender}>\nTo: <{GMAIL}>\nSubject: unrouted\n"
               f"Message-ID: <unrouted.{time.time()}@lab.test>\n\nhello\n")
    done = subprocess.run(lab.ns_command("/usr/sbin/sendmail", "-C", str(lab.etc), "-f", sender,
                                  GMAIL), input=message, text=True, capture_output=True,
                          check=False)
    assert done.returncode == 0, done
    subprocess.run(lab.ns_command("/usr/sbin/postkick", "-c", str(lab.etc), "public", "pickup",
                                  "W"), check=False)

    def deferred() -> list[dict[str, object]]:
        return [m for m in lab.postqueue_json()
                if m["sender"] == sender and m["queue_name"] == "deferred"]

    lab.wait_until(lambda: len(deferred()) == 1, 15, "the unrouted mail to be deferred")
    for entry in deferred():
        reasons = [str(r.get("delay_reason", "")) for r in entry["recipients"]]  # type: ignore[attr-defined]
        assert all("no egress route chosen" in r for r in reasons), entry
    assert not [d for d in lab.deliveries() if d.mail_from == sender]
    subprocess.run(["postsuper", "-c", str(lab.etc), "-d", "ALL", "deferred"], check=True,
                   capture_output=True)


@postfix
def test_postfix_own_bounces_leave_from_the_bounce_ip(lab: PostfixLab) -> None:
    sender = "shop@cornerbakery.example"
    result = lab.send(sender, ("reject-me@gmail.com",))
    assert result.accepted, result
    lab.wait_until(lambda: any(d.mail_from == "" and d.rcpt == sender
                               for d in lab.deliveries()), 15, "the bounce")
    bounces = [d for d in lab.deliveries() if d.mail_from == "" and d.rcpt == sender]
    assert [d.peer for d in bounces] == ["127.0.0.11"]  # first IP of the good shared pool


@postfix
def test_postfix_check_accepts_the_lab_and_reports_mismatches(lab: PostfixLab,
                                                              tmp_path: Path) -> None:
    ok = lab.poolwarden("postfix", "check", "--postfix-config", str(lab.etc),
                        "--policy", "unix:private/poolwarden", "--config", str(lab.config),
                        check=False)
    # this lab injects unauthenticated mail in the tenants' domains (sender_login off), so
    # the only mismatches are the sender login ones (test_s8_sender_login.py has them on)
    mismatches = [line for line in ok.stdout.splitlines() if line.startswith("mismatch:")]
    assert len(mismatches) == 3, ok.stdout + ok.stderr
    assert all("tenant_lookup has sender_domain" in line for line in mismatches), mismatches

    broken = tmp_path / "etc"
    shutil.copytree(lab.etc, broken)
    main = (broken / "main.cf").read_text()
    main = main.replace("smtp_bind_address_enforce = yes", "smtp_bind_address_enforce = no")
    main = main.replace("default_action = 451 4.3.5", "default_action = DUNNO")
    (broken / "main.cf").write_text(main)
    master = (broken / "master.cf").read_text()
    master = master.replace("smtp_bind_address=127.0.0.22", "smtp_bind_address=127.0.0.99")
    master = master.replace("pw-127-0-0-24 unix", "pw-old-24 unix")
    (broken / "master.cf").write_text(master)
    bad = lab.poolwarden("postfix", "check", "--postfix-config", str(broken),
                         "--config", str(lab.config), check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    text = bad.stdout
    assert "smtp_bind_address_enforce = no" in text
    assert "default_action is 'DUNNO" in text
    assert "transport pw-127-0-0-22 binds 127.0.0.99, expected 127.0.0.22" in text
    assert "egress IP 127.0.0.24 has no transport" in text


@postfix
def test_agent_down_gives_451_and_nothing_is_queued(lab: PostfixLab) -> None:
    """Last in the module: stops the agent, then starts it again."""
    sender = "shop@cornerbakery.example"
    lab.stop_agent()
    try:
        started = time.time()
        result = lab.send(sender, (GMAIL,))
        took = time.time() - started
        reply = result.rcpt_reply(GMAIL)
        assert reply is not None and reply.code == 451 and reply.enhanced == "4.3.5", result
        assert "poolwarden unavailable" in reply.text  # the generated default_action
        assert took < 5, took  # try_limit 2 × connect refused + retry_delay 1 s
        time.sleep(1)
        assert lab.deliveries([result.message_id]) == []
        assert [m for m in lab.postqueue_json() if m["sender"] == sender] == []
    finally:
        lab.start_agent()
    again = lab.send(sender, (GMAIL,), message_id=result.message_id)
    assert again.accepted, again
    assert [d.peer in NEW for d in lab.wait_delivered(1, 20, [result.message_id])] == [True]


# -- the generator and the checker without Postfix --------------------------------------


def example_texts() -> tuple[str, str]:
    inventory = load_config(EXAMPLE).inventory
    return (main_cf(inventory, policy_endpoint="unix:private/poolwarden"),
            master_cf(inventory))


STOCK = "retry unix - - n - - error\nsmtp unix - - n - - smtp\n"


def test_generated_config_passes_its_own_check() -> None:
    inventory = load_config(EXAMPLE).inventory
    main, master = example_texts()
    assert check(inventory, main, STOCK + master, "unix:private/poolwarden") == []
    assert check(inventory, main, STOCK + master, None) == []
    # the same endpoint written as an absolute path under the queue directory
    assert check(inventory, main, STOCK + master,
                 "unix:/var/spool/postfix/private/poolwarden") == []
    assert "{ default_action = 451 4.3.5 poolwarden unavailable }" in main  # P3
    assert "pw-127-0-0-21 unix - - n - - smtp" in master
    assert "-o smtp_helo_name=bigretail.mta.example.net" in master
    assert "-o syslog_name=postfix/pw-127-0-0-21" in master


def test_check_names_each_mismatch() -> None:
    inventory = load_config(EXAMPLE).inventory
    main, master = example_texts()
    main = (main.replace("smtp_bind_address_enforce = yes", "")
            .replace("enable_long_queue_ids = yes", "")
            .replace("smtpd_reject_unlisted_recipient = no", "")
            .replace("451 4.3.5 poolwarden unavailable", "DUNNO"))
    main = main.replace("smtpd_end_of_data_restrictions =", "# removed =")
    master = master.replace("127.0.0.21\n", "127.0.0.99\n").replace("pw-127-0-0-24", "pw-x")
    problems = "\n".join(check(inventory, main, STOCK + master, "inet:127.0.0.1:10040"))
    assert "smtp_bind_address_enforce = no" in problems
    assert "enable_long_queue_ids = no" in problems
    assert "policy service not wired at RCPT" in problems  # another endpoint
    assert "policy service not wired at END-OF-MESSAGE" in problems
    assert "transport pw-127-0-0-21 binds 127.0.0.99, expected 127.0.0.21" in problems
    assert "egress IP 127.0.0.24 has no transport" in problems
    assert "transport pw-x binds 127.0.0.24, which is not an egress IP" in problems
    assert "smtpd refuses every recipient" in problems
    problems = "\n".join(check(inventory, main, STOCK + master, None))
    assert "default_action is 'DUNNO" in problems
    default = check(inventory, "", STOCK, None)
    assert any("default_transport = smtp" in p for p in default)
    permit = main.replace("smtpd_recipient_restrictions =",
                          "smtpd_recipient_restrictions = permit_mynetworks,")
    assert any("permit_mynetworks before check_policy_service" in p
               for p in check(inventory, permit, STOCK + master, None))


def test_postfix_config_command_prints_both_pieces(tmp_path: Path) -> None:
    config = tmp_path / "poolwarden.toml"
    shutil.copy(EXAMPLE, config)
    result = CliRunner().invoke(app, ["postfix", "config", "--config", str(config)])
    assert result.exit_code == 0, result.output
    # the unix socket by default: only root and the postfix group can connect to it
    assert "check_policy_service { unix:private/poolwarden, timeout=2s," in result.output
    # the example finds tenants by sender domain: the login restrictions come with it
    assert "smtpd_sender_restrictions = reject_sender_login_mismatch" in result.output
    assert "pw-127-0-0-24 unix - - n - - smtp" in result.output
    result = CliRunner().invoke(app, ["postfix", "config", "--config", str(config), "--part",
                                      "main", "--policy", "inet:127.0.0.1:10040"])
    assert result.exit_code == 0, result.output
    assert "inet:127.0.0.1:10040" in result.output and "pw-127-0-0-24 unix" not in result.output


# -- one message's requests over several policy connections (request_limit = 1) ---------


@pytest.fixture(scope="module")
def lab_request_limit_1() -> Iterator[PostfixLab]:
    """A lab where Postfix opens a new policy connection for every request (docs/testing.md A1:
    test request_limit 0 and 1); the same happens to one request whenever the connection
    changes mid-transaction (agent restart, max_ttl, differing RCPT/END-OF-MESSAGE blocks)."""
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(EXAMPLE, extra_main_cf="smtpd_policy_service_request_limit = 1\n") as lab:
        yield lab


@postfix
def test_mixed_routes_split_even_when_each_request_has_its_own_connection(
        lab_request_limit_1: PostfixLab) -> None:
    lab = lab_request_limit_1
    result = lab.send("trips@travelhub.example", ("carol@gmail.com", "dan@smallbiz.example"))
    got = by_recipient(lab.wait_delivered(2, 20, [result.message_id]))
    # before transactions were keyed by instance alone, the last FILTER won here and
    # carol@gmail.com left from travelhub's dedicated 127.0.0.22
    assert got["carol@gmail.com"][0].peer in NEW, got


@postfix
def test_held_mail_gets_its_route_even_when_eom_has_its_own_connection(
        lab_request_limit_1: PostfixLab) -> None:
    lab = lab_request_limit_1
    sender = "orders@bigretail.example"
    version = max(lab.snapshot_versions())
    lab.poolwarden("override", "bigretail", "--tier", "suspended", "--why", "test",
                   "--config", str(lab.config))
    lab.wait_snapshot_after(version, timeout=5)
    result = lab.send(sender, (GMAIL,))
    assert result.accepted, result
    lab.wait_until(lambda: len(held(lab, sender)) == 1, 10, "the held message")
    # END-OF-MESSAGE arrives on its own connection and must still carry the release route
    postcat = subprocess.run(["postcat", "-c", str(lab.etc), "-e", "-q",
                              held(lab, sender)[0]], capture_output=True, text=True,
                             check=True).stdout
    assert "content_filter: pw-127-0-0-21:" in postcat
