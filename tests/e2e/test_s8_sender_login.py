"""S8 (RELIABILITY.md): a tenant cannot be claimed by a client that is not logged in as it.

Postfix is configured by the generator with the example's ``tenant_lookup`` (sasl,
sender_domain, client_address), which therefore emits ``smtpd_sender_login_maps`` and
``reject_sender_login_mismatch``. Tenant B is bigretail (dedicated IP 127.0.0.21);
tenant A is travelhub (SASL login travelhub, dedicated 127.0.0.22 for non-major mail).

Must hold: mail with B's sender domain (or a subdomain of it) from an unauthenticated
client, from A's login or from another tenant's client address is rejected (553 5.7.1,
"not logged in" or "not owned by user") and never leaves at all, let alone from B's IP;
B's own login and A with its own domain are delivered from their own IPs;
``poolwarden postfix check``
fails on the same Postfix without the restriction and passes with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.support import EXAMPLE
from tests.support.postfix_lab import PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

pytestmark = pytest.mark.postfix

B_IP, A_IP = "127.0.0.21", "127.0.0.22"
OTHER = "bob@smallbiz.example"  # not a major provider: dedicated IPs for both plans


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(EXAMPLE, sender_login=True) as running:
        yield running


@pytest.mark.parametrize(("sender", "sasl", "client"), [
    ("x@bigretail.example", None, None),  # unauthenticated
    ("x@mail.bigretail.example", None, None),  # B's second domain
    ("x@eu.bigretail.example", None, None),  # a subdomain the agent would map to B
    ("x@bigretail.example", "travelhub", None),  # A's login with B's domain
    ("x@bigretail.example", None, "198.51.100.7"),  # another tenant's client address
], ids=["unauthenticated", "second-domain", "subdomain", "tenant-a-login", "a-client-address"])
def test_claiming_b_is_rejected_at_mail_from(lab: PostfixLab, sender: str, sasl: str | None,
                                             client: str | None) -> None:
    result = lab.send(sender, [OTHER], sasl=sasl, client_address=client)
    assert not result.accepted, result.replies
    code, text = result.failed[OTHER]
    assert code == 553, (code, text)
    # Postfix's two wordings: unauthenticated, or logged in as someone else
    assert "Sender address rejected: not" in text, text
    assert ("not logged in" in text) == (sasl is None), text
    assert lab.deliveries([result.message_id]) == []
    # the agent never saw it: nothing routed, counted or charged to B
    assert result.message_id not in lab.agent_log_text()


def test_each_tenant_with_its_own_login_and_domain_is_routed_as_itself(lab: PostfixLab) -> None:
    b = lab.send("x@bigretail.example", [OTHER], sasl="bigretail")
    a = lab.send("x@travelhub.example", [OTHER], sasl="travelhub")
    assert b.accepted and a.accepted, (b.replies, a.replies)
    lab.wait_delivered(2, message_ids=[a.message_id, b.message_id])
    assert [d.peer for d in lab.deliveries([b.message_id])] == [B_IP]
    assert [d.peer for d in lab.deliveries([a.message_id])] == [A_IP]


def test_postfix_check_fails_without_the_restriction(lab: PostfixLab) -> None:
    ok = lab.poolwarden("postfix", "check", "-c", str(lab.config), "--postfix-config",
                              str(lab.etc), check=False)
    assert "sender_login" not in ok.stdout and "login_mismatch" not in ok.stdout, ok.stdout
    main = (lab.etc / "main.cf").read_text()
    try:
        (lab.etc / "main.cf").write_text(re.sub(r"(?m)^smtpd_sender_restrictions = .*$",
                                                "smtpd_sender_restrictions = permit_mynetworks,"
                                                " reject_sender_login_mismatch", main))
        bad = lab.poolwarden("postfix", "check", "-c", str(lab.config), "--postfix-config",
                              str(lab.etc), check=False)
        assert bad.returncode == 1, bad.stdout
        assert "permit_* before it" in bad.stdout
        (lab.etc / "main.cf").write_text(re.sub(r"(?m)^smtpd_sender_login_maps = .*$", "",
                                                main))
        bad = lab.poolwarden("postfix", "check", "-c", str(lab.config), "--postfix-config",
                              str(lab.etc), check=False)
        assert bad.returncode == 1 and "smtpd_sender_login_maps is not set" in bad.stdout
    finally:
        (lab.etc / "main.cf").write_text(main)
