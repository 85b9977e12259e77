"""The reply catalogue and the classification precedence, on the providers' documented replies.

Every text here is a reply as the provider's own page documents it (the page is named on
each row group), not a sample from the corpus. One group per pattern the classifier used
to get wrong: a provider code or a named cause under an ``x.0.0`` status; ``4.7.x`` /
``5.7.x`` replies that say why; rate and connection limits; a status code contradicted
by its text; unknown users; and recipient extraction.
"""

from __future__ import annotations

import re

import pytest

from poolwarden.wire.bounce_classify import CLASS_OF, classify, is_hard
from poolwarden.wire.dsn import parse
from poolwarden.wire.reply_catalogue import ABOUT, CAUSES, PROVIDERS

Row = tuple[str | None, str | None, str, str | None, str]  # code, status, text, remote MTA, reason

# 1. No enhanced status (Postfix then writes x.0.0): the provider's code or the named cause.
NO_STATUS: list[Row] = [
    # GMX/web.de use no enhanced codes (postmaster.gmx.net/en/error-messages)
    ("554", "5.0.0", "554-gmx.net (mxgmx104) Nemesis ESMTP Service not available 554-No SMTP "
     "service 554-IP address is block listed. 554 For explanation visit https://postmaster.gmx"
     ".net/en/case?c=r0201&i=ip&v=198.51.100.42&r=1MNcgj", "mx00.emig.gmx.net", "blocked"),
    ("550", "5.0.0", "550 <someone@web.de>: Reject due to SPF policy. The originating IP of the "
     "message is not permitted by the domain owner", "mx-ha.web.de", "authfailure"),
    # Comcast block codes (postmaster.comcast.net/mail-error-codes)
    ("554", "5.0.0", "554 resimta-po-01v.sys.comcast.net resimta comcast 192.0.2.7 found on one "
     "or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
     "mx1.comcast.net", "blocked"),
    ("421", "4.0.0", "421 - [Reverse DNS failure : Try again later]", "mx2.comcast.net",
     "requireptr"),
    ("421", "4.0.0", "421 - [Too many sessions opened]", "mx2.comcast.net", "toomanyconn"),
    # Orange labels (postmaster.orange.fr)
    ("550", "5.0.0", "550 mwinf5c15 ME Adresse IP source bloquee pour incident de spam. Client "
     "host blocked for spamming issues. OFR006_101 [101]", "smtp-in.orange.fr", "blocked"),
    ("421", "4.0.0", "421 mwinf5c13 ME Trop de connexions, veuillez verifier votre configuration."
     " Too many connections, slow down. OFR005_104 [104]", "smtp-in.orange.fr", "toomanyconn"),
    # Mail.ru (help.mail.ru postmaster)
    ("550", "5.0.0", "550 spam message rejected. Please visit https://help.mail.ru/notspam-"
     "support/id?c=abc or report details to abuse@corp.mail.ru. Error code: 1A2B. ID: 0FF",
     "mxs.mail.ru", "spamdetected"),
    ("421", "4.0.0", "421 ratelimit exceeded, try again later", "mxs.mail.ru", "speeding"),
    # Barracuda (barracudacentral.org)
    ("554", "5.0.0", "554 Service unavailable; Client host [192.0.2.8] blocked using Barracuda "
     "Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.8", None,
     "blocked"),
    # generic causes any server writes (Postfix, RFC 3463 subjects)
    ("451", "4.0.0", "451 Temporary local problem - please try later", None, "systemerror"),
    ("550", "5.0.0", "550 Sender address rejected: domain not found", None, "rejected"),
]

# 2. 4.7.x / 5.7.x that say why (not "securityerror").
SECURITY_SAYS_WHY: list[Row] = [
    # support.google.com/mail/answer/188131 and /81126
    ("550", "5.7.1", "550-5.7.1 Our system has detected that this message is likely suspicious "
     "due to the very low reputation of the sending domain. To best protect our users from "
     "spam, the message has been blocked.", "gmail-smtp-in.l.google.com", "badreputation"),
    ("550", "5.7.1", "550-5.7.1 This message is likely unsolicited mail. To reduce the amount "
     "of spam sent to Gmail, this message has been blocked.", "gmail-smtp-in.l.google.com",
     "spamdetected"),
    ("550", "5.7.26", "550-5.7.26 Your email has been blocked because the sender is "
     "unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
     "gmail-smtp-in.l.google.com", "authfailure"),
    ("421", "4.7.32", "421-4.7.32 Your email has been rate limited because the From: header "
     "(RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM "
     "organizational domain.", "gmail-smtp-in.l.google.com", "authfailure"),
    # Microsoft NDR pages and the Outlook.com postmaster
    ("550", "5.7.1", "550 5.7.1 Unfortunately, messages from [192.0.2.9] weren't sent. Please "
     "contact your Internet service provider since part of their network is on our block list "
     "(S3140).", "eur.olc.protection.outlook.com", "blocked"),
    ("550", "5.7.1", "550 5.7.1 Service unavailable, Client host [192.0.2.9] blocked using "
     "Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/",
     "example-com.mail.protection.outlook.com", "blocked"),
    # Apple (support.apple.com/102322)
    ("550", "5.7.1", "550 5.7.1 Your message was rejected due to example.com DMARC policy.",
     "mx01.mail.icloud.com", "authfailure"),
    ("554", "5.7.1", "554 5.7.1 [HM08] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137", "mx01.mail.icloud.com", "blocked"),
    # Cloudmark CSI (used by ISPs)
    ("550", "5.7.1", "550 5.7.1 Poor Reputation Sender. - https://csi.cloudmark.com/reset-"
     "request/?ip=192.0.2.3", None, "badreputation"),
]

# 3. Rate, volume and connection limits.
RATE: list[Row] = [
    ("450", "4.2.1", "450-4.2.1 The user you are trying to contact is receiving mail too "
     "quickly. Please resend your message at a later time.", "gmail-smtp-in.l.google.com",
     "speeding"),
    ("450", "4.2.1", "450-4.2.1 Peak SMTP relay limit exceeded for customer. This is a "
     "temporary error.", "smtp-relay.gmail.com", "speeding"),
    ("452", "4.5.3", "452-4.5.3 Your message has too many recipients.", "smtp.gmail.com",
     "toomanyconn"),
    ("421", "4.7.1", "421 4.7.1 Messages to someone@icloud.com deferred due to excessive "
     "volume. Try again later - https://support.apple.com/en-us/HT204137",
     "mx01.mail.icloud.com", "speeding"),
    ("421", "4.7.0", "421 Max message per connection reached, closing transmission channel",
     "mta5.am0.yahoodns.net", "toomanyconn"),
    ("451", "4.7.650", "451 4.7.650 The mail server [192.0.2.5] has been temporarily rate "
     "limited due to IP reputation.", "hotmail-com.olc.protection.outlook.com",
     "badreputation"),
]

# 4. The text names a cause the status code contradicts.
TEXT_OVER_STATUS: list[Row] = [
    ("550", "5.1.0", "550 5.1.0 Sender address rejected: Access denied", None, "rejected"),
    ("550", "5.2.1", "550 5.2.1 Service unavailable; client [192.0.2.4] blocked using "
     "bl.spamcop.net", None, "blocked"),
    ("450", "4.2.0", "450 4.2.0 Rate limit exceeded, please slow down", None, "speeding"),
    # give-ups that say why: DNS failure, no SMTP connection, invalid domain
    (None, "5.4.4", "Host or domain name not found. Name service error for name=no-such.example"
     " type=MX: Host not found, try again", None, "hostunknown"),
    (None, "4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection refused", None,
     "networkerror"),
    ("550", "5.4.310", "550 5.4.310 DNS domain example.invalid does not exist", None,
     "hostunknown"),
]

# 5. Unknown users and unavailable mailboxes are hard bounces.
UNKNOWN_USER: list[Row] = [
    ("550", "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. "
     "Please try double-checking the recipient's email address for typos.",
     "gmail-smtp-in.l.google.com", "userunknown"),
    ("550", "5.0.0", "550 Requested action not taken: mailbox unavailable (in reply to RCPT TO "
     "command)", "mx00.gmx.net", "userunknown"),
    ("550", "5.2.1", "550 5.2.1 <someone@example.org>: Recipient address rejected: User unknown "
     "(in reply to RCPT TO command)", None, "userunknown"),
    ("550", "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
     "address lookup", "example-com.mail.protection.outlook.com", "userunknown"),
    ("554", "5.0.0", "554 delivery error: dd This user doesn't have a yahoo.com account "
     "(someone@yahoo.com) [0]", "mta7.am0.yahoodns.net", "userunknown"),
]

ALL = [*NO_STATUS, *SECURITY_SAYS_WHY, *RATE, *TEXT_OVER_STATUS, *UNKNOWN_USER]


@pytest.mark.parametrize(("code", "status", "text", "mta", "reason"), ALL)
def test_documented_reply(code: str | None, status: str | None, text: str, mta: str | None,
                          reason: str) -> None:
    got = classify(code, status, text, remote_mta=mta)
    assert got.reason == reason, got.rule_id
    temporary = (status or "").startswith("4") or (code or "").startswith("4")
    assert got.hard == (reason in ("userunknown", "hostunknown") and not temporary)


def test_no_named_cause_stays_undecided() -> None:
    assert classify("550", "5.0.0", "550 Requested action not taken").reason == "onhold"


def test_expired_only_when_nothing_names_a_cause() -> None:
    assert classify(None, "4.4.7", "delivery temporarily suspended: connect to mx.example.net["
                    "192.0.2.1]:25: Connection refused").reason == "networkerror"
    plain = classify(None, "4.4.7", "Message expired after sitting in queue for 5 days",
                     action="failed")
    assert plain.reason == "expired"


def test_provider_code_and_about_are_reported() -> None:
    got = classify("421", "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily "
                   "deferred due to unexpected volume or user complaints - 4.16.55.1; see "
                   "https://postmaster.yahooinc.com/error-codes",
                   remote_mta="mta6.am0.yahoodns.net")
    assert (got.provider_code, got.about, got.hard) == ("TSS04", "ip", False)
    ms = classify("550", "5.7.606", "550 5.7.606 Access denied, banned sending IP [192.0.2.25]")
    assert (ms.reason, ms.provider_code, ms.about) == ("blocked", "606", "ip")


@pytest.mark.parametrize("entry", [*PROVIDERS, *CAUSES], ids=lambda e: e.id)
def test_catalogue_entry_is_complete(entry: object) -> None:
    from poolwarden.wire.reply_catalogue import Entry

    assert isinstance(entry, Entry)
    rx = re.compile(entry.pattern)
    assert entry.source.startswith("https://") or entry.source.startswith("http://")
    assert entry.about in ABOUT
    assert entry.reason in CLASS_OF
    assert entry.hard == is_hard(entry.reason, "5.0.0")
    assert set(rx.groupindex) <= {"code"}
    if entry.host:
        re.compile(entry.host)


def test_catalogue_ids_unique_and_providers_covered() -> None:
    ids = [e.id for e in (*PROVIDERS, *CAUSES)]
    assert len(ids) == len(set(ids))
    providers = {e.provider for e in PROVIDERS}
    assert {"google", "microsoft", "yahoo", "apple", "comcast", "gmx", "orange", "mailru",
            "proofpoint", "mimecast", "barracuda", "cloudmark"} <= providers


@pytest.mark.parametrize("status", ["4.2.2", "4.1.1", "4.7.1", "4.4.7", "4.0.0"])
def test_temporary_replies_are_never_hard(status: str) -> None:
    for text in ("user unknown", "no such domain", "mailbox full", "blocked using zen"):
        assert not classify("450", status, text).hard


# 6. Recipient extraction.
_HEAD = (b"From: MAILER-DAEMON@mx.example.org\nTo: sender@example.org\n"
         b"Subject: Undelivered Mail Returned to Sender\n")


def test_sender_address_is_never_the_failed_recipient() -> None:
    body = (b"This is the mail system at host mx.example.org.\n\n"
            b"I'm sorry to have to inform you that your message could not be delivered.\n\n"
            b"   ----- The following addresses had permanent fatal errors -----\n"
            b"sender@example.org\n")
    result = parse(_HEAD + b"\n" + body)
    assert all(r.address != "sender@example.org" for r in result.recipients)


def test_sendmail_transcript_reply_goes_to_the_recipient_after_it() -> None:
    body = (b"   ----- Transcript of session follows -----\n"
            b"... while talking to mx.one.example:\n"
            b">>> RCPT To:<first@one.example>\n"
            b"<<< 550 5.1.1 <first@one.example>... User unknown\n"
            b"550 5.1.1 <first@one.example>... User unknown\n"
            b"... while talking to mx.two.example:\n"
            b">>> DATA\n"
            b"<<< 552 5.2.2 <second@two.example>... Mailbox full\n"
            b"554 5.0.0 <second@two.example>... Service unavailable\n")
    result = parse(_HEAD + b"\n" + body)
    got = {r.address: r.reason for r in result.recipients}
    assert got == {"first@one.example": "userunknown", "second@two.example": "mailboxfull"}


def test_a_message_that_is_not_a_bounce_has_no_failed_recipient() -> None:
    msg = (b"From: alice@example.org\nTo: bob@example.org\nSubject: lunch\n\n"
           b"Shall we meet at noon? Write to carol@example.org too.\n")
    result = parse(msg)
    assert result.kind == "other" and not result.recipients
