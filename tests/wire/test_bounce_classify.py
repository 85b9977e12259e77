"""Golden table for wire.bounce_classify: (reply code, status, text[, MTA]) -> reason/class/hard.

Texts are real provider and MTA replies (Google, Microsoft, Yahoo, Apple, Orange,
GoDaddy, Cox, Facebook, QQ, Postfix, Exim, qmail, Sendmail...), as published in
their error-code pages or seen in public bounce collections.
"""

from __future__ import annotations

import re

import pytest

from poolwarden.wire.bounce_classify import (
    CLASS_OF,
    PHRASES,
    PROVIDER_RULES,
    STATUS_REASONS,
    classify,
    find_command,
    find_reply_code,
    find_status,
    is_hard,
)

GOLDEN: list[tuple[str | None, str | None, str, str | None, str, str, bool]] = [
    # code, status, text, remote MTA, reason, class, hard
    # --- Google / Gmail
    ("550", "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. Please "
     "try double-checking the recipient's email address for typos. https://support.google.com/"
     "mail/?p=NoSuchUser", "gmail-smtp-in.l.google.com", "userunknown", "hard", True),
    ("452", "4.2.2", "452-4.2.2 The email account that you tried to reach is over quota. Please "
     "direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp", None,
     "mailboxfull", "soft", False),
    ("550", "5.7.26", "550-5.7.26 Unauthenticated email from example.com is not accepted due to "
     "domain's DMARC policy. Please contact the administrator of example.com domain.", None,
     "authfailure", "policy", False),
    ("421", "4.7.28", "421-4.7.28 Gmail has detected an unusual rate of mail originating from "
     "your IP address 192.0.2.25. To protect our users from spam, mail has been temporarily rate "
     "limited.", None, "blocked", "reputation", False),
    ("550", "5.7.1", "550-5.7.1 Our system has detected that this message is likely suspicious "
     "due to the very low reputation of the sending IP address.", None,
     "badreputation", "reputation", False),
    ("550", "5.7.25", "550-5.7.25 The IP address sending this message does not have a PTR record "
     "setup, or the corresponding forward DNS entry does not point to the sending IP.", None,
     "requireptr", "policy", False),
    ("550", "5.7.1", "550-5.7.1 This message does not have authentication information or fails to "
     "pass authentication checks (SPF or DKIM).", None, "authfailure", "policy", False),
    ("552", "5.2.2", "552-5.2.2 The email account that you tried to reach is over quota and "
     "inactive.", None, "mailboxfull", "soft", False),
    ("550", "5.2.1", "550-5.2.1 The email account that you tried to reach is disabled.", None,
     "suspend", "soft", False),
    ("552", "5.3.4", "552-5.3.4 Your message exceeded Google's message size limits.", None,
     "mesgtoobig", "content", False),
    # --- Microsoft
    ("550", "5.7.606", "550 5.7.606 Access denied, banned sending IP [192.0.2.25]. To request "
     "removal from this list please visit https://sender.office.com/", None,
     "blocked", "reputation", False),
    ("550", "5.7.1", "550 5.7.1 Unfortunately, messages from [192.0.2.25] weren't sent. Please "
     "contact your Internet service provider since part of their network is on our block list "
     "(S3150).", None, "blocked", "reputation", False),
    ("550", "5.7.708", "550 5.7.708 Service unavailable. Access denied, traffic not accepted from "
     "this IP.", None, "blocked", "reputation", False),
    ("550", "5.7.509", "550 5.7.509 Access denied, sending domain [EXAMPLE.COM] does not pass "
     "DMARC verification and has a DMARC policy of reject.", None,
     "authfailure", "policy", False),
    ("550", "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
     "address lookup", "mail.protection.outlook.com", "userunknown", "hard", True),
    ("451", "4.7.650", "451 4.7.650 The mail server [192.0.2.5] has been temporarily rate limited "
     "due to IP reputation. For e-mail delivery information, see https://postmaster.live.com "
     "(S775)", None, "badreputation", "reputation", False),
    ("550", "5.7.515", "550 5.7.515 Access denied, sending domain EXAMPLE.JP doesn't meet the "
     "required authentication level.", None, "authfailure", "policy", False),
    # --- Yahoo / AOL
    ("421", "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to "
     "unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/"
     "error-codes", "mta7.am0.yahoodns.net", "rejected", "reputation", False),
    ("421", "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to "
     "unexpected volume or user complaints", None, "badreputation", "reputation", False),
    ("554", "5.0.0", "554 delivery error: dd This user doesn't have a yahoo.com account "
     "(nobody@yahoo.com) [0] - mta1234.mail.bf1.yahoo.com", "mta5.am0.yahoodns.net",
     "userunknown", "hard", True),
    ("554", "5.7.9", "554 5.7.9 Message not accepted for policy reasons. See "
     "https://postmaster.yahooinc.com/error-codes", "mta6.am0.yahoodns.net",
     "policyviolation", "policy", False),
    # --- Apple iCloud
    ("554", "5.7.1", "554 5.7.1 [CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137", None, "blocked", "reputation", False),
    # --- Orange / La Poste, GoDaddy, Cox, Facebook, QQ
    ("550", "5.2.0", "550 5.2.0 Mail rejete. Mail rejected. ofr_506 [506]", None,
     "spamdetected", "content", False),
    ("550", "5.5.0", "550 5.5.0 Le compte du destinataire est bloque. The recipient account is "
     "blocked. LPN007_426", None, "suspend", "soft", False),
    ("550", "5.1.1", "550 5.1.1 <user@example.com> - 203.0.113.222 has sent to too many "
     "recipients this hour. IB607 <http://x.co/rlbounce>", None, "speeding", "reputation", False),
    ("554", None, "554 rejected. AUP#CXBL https://www.cox.com/residential/support/email-error-"
     "codes.html", None, "blocked", "reputation", False),
    ("550", "5.1.1", "550 5.1.1 RCP-P2 http://postmaster.facebook.com/response_codes?ip=192.0.2."
     "135#rcp Refused due to recipient preferences", None, "filtered", "content", False),
    ("550", None, "550 Ip frequency limited [Blocked IP 192.0.2.22]. http://service.mail.qq.com/"
     "cgi-bin/help?subtype=1&&id=20022&&no=1000722", None, "toomanyconn", "soft", False),
    # --- Postfix / generic MTAs
    ("550", "5.1.1", "550 5.1.1 <kijitora@example.jp>: Recipient address rejected: User unknown "
     "in local recipient table", None, "userunknown", "hard", True),
    ("450", "4.1.1", "450 4.1.1 <kijitora@example.org>: Recipient address rejected: User unknown "
     "in virtual alias table (in reply to RCPT TO command)", None, "userunknown", "hard", False),
    ("550", "5.1.2", "550 5.1.2 <nobody@no-such-domain.example>: Recipient address rejected: "
     "Domain not found", None, "hostunknown", "hard", True),
    ("552", "5.2.2", "552 5.2.2 <kijitora@example.jp>... Mailbox Full", None,
     "mailboxfull", "soft", False),
    ("552", "5.3.4", "552 5.3.4 Error: message file too big", None, "mesgtoobig", "content",
     False),
    ("554", "5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using "
     "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.25", None,
     "blocked", "reputation", False),
    ("550", "5.7.23", "550 5.7.23 <user@example.org>: Recipient address rejected: Message "
     "rejected due to: SPF fail - not authorized.", None, "authfailure", "policy", False),
    ("451", "4.7.1", "451 4.7.1 <mx.example.org[192.0.2.2]>: Client host rejected: Please try "
     "again slower", None, "speeding", "reputation", False),
    ("554", "5.7.1", "554 5.7.1 <unknown[192.0.2.2]>: Client host rejected: cannot find your "
     "hostname, [192.0.2.2]", None, "requireptr", "policy", False),
    ("550", "5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering.", None,
     "spamdetected", "content", False),
    ("554", "5.7.1", "554 5.7.1 <relay@example.org>: Relay access denied", None,
     "norelaying", "policy", False),
    (None, "4.4.7", "delivery temporarily suspended: connect to mx.example.jp[192.0.2.2]:25: "
     "Connection timed out", None, "expired", "soft", False),
    (None, "5.4.4", "Host or domain name not found. Name service error for name=example.invalid "
     "type=A: Host not found", None, "hostunknown", "hard", True),
    ("550", "5.1.6", "550 5.1.6 Recipient addresses in this domain have been replaced by "
     "addresses in example.net", None, "hasmoved", "hard", True),
    ("550", "5.7.27", "550 5.7.27 Sender address has null MX", None, "notaccept", "hard", True),
    ("554", "5.6.0", "554 5.6.0 Message contains invalid header", None,
     "contenterror", "content", False),
    # --- Exim / qmail / Sendmail texts
    (None, None, "mailbox is full: retry timeout exceeded", None, "mailboxfull", "soft", False),
    (None, None, "retry timeout exceeded", None, "expired", "soft", False),
    (None, None, "Sorry, I couldn't find any host named example.invalid. (#5.1.2)", None,
     "hostunknown", "hard", True),
    (None, None, "Sorry, no mailbox here by that name. (#5.1.1)", None, "userunknown", "hard",
     True),
    (None, None, "all relevant MX records point to non-existent hosts", None,
     "hostunknown", "hard", True),
    ("550", None, "550 Unknown user kijitora@example.ne.jp (in reply to RCPT TO command)", None,
     "userunknown", "hard", True),
    # --- success and undecidable
    ("250", "2.1.5", "250 2.1.5 Ok", None, "delivered", "other", False),
    (None, None, "", None, "undefined", "other", False),
]


@pytest.mark.parametrize(("code", "status", "text", "mta", "reason", "klass", "hard"), GOLDEN)
def test_golden(code: str | None, status: str | None, text: str, mta: str | None, reason: str,
                klass: str, hard: bool) -> None:
    got = classify(code, status, text, remote_mta=mta)
    assert (got.reason, got.bounce_class, got.hard) == (reason, klass, hard), got.rule_id


def test_golden_table_is_large_enough() -> None:
    assert len(GOLDEN) >= 40


def test_rule_ids_are_unique_and_patterns_compile() -> None:
    ids = [r.id for r in PROVIDER_RULES] + [r.id for rules in PHRASES.values() for r in rules]
    assert len(ids) == len(set(ids))
    for rule in PROVIDER_RULES:
        re.compile(rule.pattern)
        assert rule.source


def test_every_reason_has_a_class_or_is_other() -> None:
    reasons = set(STATUS_REASONS.values()) | set(PHRASES) | {r.reason for r in PROVIDER_RULES}
    unknown = {r for r in reasons if r not in CLASS_OF} - {
        "delivered", "vacation", "syntaxerror", "mailererror", "undefined", "suppressed"}
    assert not unknown


def test_hard_rule_follows_sisimai_but_temporary_replies_are_never_hard() -> None:
    assert is_hard("userunknown", "5.1.1")
    assert not is_hard("userunknown", "4.1.1")  # the receiver said: try again
    assert not is_hard("userunknown", "", "450")
    assert is_hard("notaccept", "5.1.10")
    assert not is_hard("notaccept", "4.0.0")
    assert not is_hard("mailboxfull", "5.2.2")
    assert not is_hard("suspend", "5.2.1")


def test_helpers_find_codes_and_commands() -> None:
    assert find_status("host 192.0.2.1 said: 550 5.1.1 user unknown") == "5.1.1"
    assert find_status("250 2.1.5 Ok ... 451 4.3.0 queue file write error") == "4.3.0"
    assert find_status("no code at 192.0.2.10") == ""
    assert find_reply_code("said: 550 5.1.1 <a@b.example>") == "550"
    assert find_command("(in reply to end of DATA command)") == "DATA"
    assert find_command("host said: 550 no (in reply to RCPT TO command)") == "RCPT"
    assert find_command("Technical details: SMTP:RCPT host 192.0.2.8: 553") == "RCPT"


@pytest.mark.parametrize("junk", ["\x00\x01", "5.5.5.5.5", "9" * 5000, "<" * 10000, "é" * 100])
def test_junk_never_raises(junk: str) -> None:
    got = classify(junk, junk, junk, reporting_mta=junk, remote_mta=junk)
    assert got.reason
