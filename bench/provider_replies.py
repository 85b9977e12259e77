"""Checking set: providers' replies as their pages (or pages quoting them) publish them.

Comcast's page lists block codes, not whole replies: those rows put the documented code
in Comcast's reply layout. Kept apart from the rules on purpose: these rows were
collected after the catalogue was written and were *not* used to write or change any
rule; ``bench_classify.py`` reports
the figure on them separately from the corpus figure. Each row: provider, the receiving
MX, the SMTP command the reply answered, the reply as published, the sisimai-5 reason
the page's explanation means, and the page. ``to_dsn`` wraps a row into the DSN a
Postfix sender would write for it (Postfix puts ``x.0.0`` in Status: when the reply has
no enhanced code), so the classifier and sisimai read the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHECK_SET", "Reply", "to_dsn"]


@dataclass(frozen=True, slots=True)
class Reply:
    provider: str
    mx: str
    command: str  # RCPT | MAIL | DATA | CONN
    reply: str
    expected: str
    source: str


_G = "https://support.google.com/a/answer/3726730"
_GK = "https://help.kyriossystems.com/en/articles/13680062-error-codes-library-gmail-google-workspace"
_ICLOUD = "https://smtp.codes/icloud"
_GMX = "https://postmaster.gmx.com/en/error-messages"
_UI = "https://smtp.codes/unitedinternet/"
_COMCAST = "http://security.comcast.net/get-help/Mail-Delivery-Error-Messages.aspx"
_XFINITY = "https://es.xfinity.com/support/articles/email-errors"
_MIMECAST = "https://electronicaportatil.com/smtp-error-codes/ (Mimecast SMTP error codes)"
_MS1 = "https://virtbiz.com/client/index.php?rp=/knowledgebase/71 (Outlook.com NDR)"
_MS2 = "https://mailflowauthority.com/troubleshooting/outlook-550-5-7-606-fix"
_MS3 = "https://datarecoverypanama.com/blog/smtp-configuration/microsoft-550-5-7-520-email-block-fix-guide.html"
_YAHOO = "https://tamingdns.com/bounce-decoder/yahoo"
_MAILRU = "https://viws.ru/en/poterya-pochtovyh-soobshchenii-oshibki-pochtovoi-sistemy.html"
_MAILRU2 = "https://mailout.ru/2015/09"
_ORANGE = ("https://www.suped.com/knowledge/email-deliverability/technical/"
           "what-causes-email-delays-and-ofr_999-errors-when-sending-to-orangefr")
_PP = "http://www.hunter.cuny.edu/icit/help-docs/archive/proofpoint/spam-interception"
_PP2 = "https://www.suped.com/email-deliverability/answers/how-to-get-proofpoint-to-unblock-my-ip-address"
_BARRACUDA = "http://tig.csail.mit.edu/wiki/TIG/EmailBlockedByBarracuda"

_GMAIL = "gmail-smtp-in.l.google.com"
_OUTLOOK = "hotmail-com.olc.protection.outlook.com"
_M365 = "example-com.mail.protection.outlook.com"
_YMX = "mta6.am0.yahoodns.net"
_IMX = "mx01.mail.icloud.com"

CHECK_SET: tuple[Reply, ...] = (
    # Google
    Reply("google", _GMAIL, "RCPT", "421 4.3.0 Temporary System Problem. Try again later",
          "systemerror", _G),
    Reply("google", _GMAIL, "RCPT", "421 4.7.0 IP not in whitelist for RCPT domain, closing "
          "connection.", "blocked", _G),
    Reply("google", _GMAIL, "RCPT", "421 4.7.0 TLS required for RCPT domain, closing "
          "connection.", "failedstarttls", _G),
    Reply("google", _GMAIL, "RCPT", "450 4.2.1 The user you are trying to contact is receiving "
          "mail at a rate that prevents additional messages from being delivered. Please resend "
          "your message at a later time.", "speeding", _G),
    Reply("google", _GMAIL, "DATA", "452 4.2.2 The email account that you tried to reach is "
          "over quota. Please direct the recipient to this article.", "mailboxfull", _G),
    Reply("google", _GMAIL, "RCPT", "452 4.5.3 Domain policy size per transaction exceeded, "
          "please try this recipient in a separate transaction.", "toomanyconn", _G),
    Reply("google", _GMAIL, "RCPT", "550 5.2.1 The email account that you tried to reach is "
          "disabled.", "suspend", _G),
    Reply("google", _GMAIL, "DATA", "552 5.3.4 Your message exceeded Google's message size "
          "limits.", "mesgtoobig", _G),
    Reply("google", _GMAIL, "RCPT", "553 5.1.2 We weren't able to find the recipient domain. "
          "Please check for any spelling errors, and make sure you didn't enter any spaces, "
          "periods, or other punctuation after the recipient's email address.", "hostunknown", _G),
    Reply("google", _GMAIL, "DATA", "554 5.6.0 Message exceeded 50 hops, this may indicate a "
          "mail loop.", "networkerror", _G),
    Reply("google", _GMAIL, "DATA", "421 4.7.0 Our system has detected an unusual rate of "
          "unsolicited mail originating from your IP address. To protect our users from spam, "
          "mail sent from your IP address has been temporarily blocked.", "blocked", _GK),
    # Microsoft
    Reply("microsoft", _OUTLOOK, "MAIL", "550 5.7.1 Unfortunately, messages from [192.0.2.44] "
          "weren't sent. Please contact your Internet service provider since part of their "
          "network is on our block list (S3140). You can also refer your provider to "
          "http://mail.live.com/mail/troubleshooting.aspx#errors.", "blocked", _MS1),
    Reply("microsoft", _M365, "RCPT", "550 5.7.606 Access denied, banned sending IP "
          "[192.0.2.44]. To request removal from this list please visit https://sender.office."
          "com/ and follow the directions.", "blocked", _MS2),
    Reply("microsoft", _M365, "DATA", "550 5.7.515 Access denied, sending domain example.org "
          "doesn't meet the required authentication level.", "authfailure", _MS3),
    Reply("microsoft", _OUTLOOK, "RCPT", "451 4.7.650 The mail server [192.0.2.44] has been "
          "temporarily rate limited due to IP reputation.", "badreputation", _MS3),
    Reply("microsoft", _M365, "RCPT", "550 5.7.708 Service unavailable. Access denied, "
          "traffic not accepted from this IP.", "blocked", _MS3),
    # Yahoo / AOL
    Reply("yahoo", _YMX, "MAIL", "421 4.7.0 [TSS02] Messages from 198.51.100.1 temporarily "
          "deferred due to user complaints or because the IP/domain is in the unverified "
          "category. Please make sure that your email is RFC-5321 compliant.",
          "badreputation", _YAHOO),
    Reply("yahoo", _YMX, "RCPT", "550 5.1.1 No such user here.", "userunknown", _YAHOO),
    Reply("yahoo", _YMX, "MAIL", "553 5.7.2 [TSS09] All messages from 192.0.2.44 will be "
          "permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com"
          "/error-codes", "blocked", _YAHOO),
    # Apple iCloud
    Reply("apple", _IMX, "RCPT", "421 4.7.0 me.com Error: too many errors", "toomanyconn",
          _ICLOUD),
    Reply("apple", _IMX, "RCPT", "451 4.7.1 Service unavailable - try again later",
          "systemerror", _ICLOUD),
    Reply("apple", _IMX, "RCPT", "550 5.1.1 <someone@icloud.com>: user does not exist",
          "userunknown", _ICLOUD),
    Reply("apple", _IMX, "DATA", "550 5.7.1 [CS01] Message rejected due to local policy. "
          "Please visit https://support.apple.com/en-us/HT204137", "blocked", _ICLOUD),
    Reply("apple", _IMX, "DATA", "550 5.7.1 Your email was rejected due to having a domain "
          "present in the Spamhaus DBL -- see https://www.spamhaus.org/dbl/", "blocked",
          _ICLOUD),
    # GMX / web.de
    Reply("gmx", "mx00.emig.gmx.net", "CONN", "554-gmx.net (mxgmx104) Nemesis ESMTP Service "
          "not available 554-No SMTP service 554-IP address is block listed. 554 For "
          "explanation visit https://postmaster.gmx.net/en/case?c=r0201&i=ip&v=198.51.100.42",
          "blocked", _GMX),
    Reply("gmx", "mx-ha.web.de", "RCPT", "550 Requested action not taken: mailbox unavailable",
          "userunknown", _UI),
    Reply("gmx", "mx-ha.web.de", "MAIL", "501 Syntax error in parameters or arguments",
          "syntaxerror", _UI),
    # Comcast
    Reply("comcast", "mx1.comcast.net", "RCPT", "421 - [Too many sessions opened] Comcast "
          "allows 10 simultaneous connections.", "toomanyconn", _COMCAST),
    Reply("comcast", "mx1.comcast.net", "CONN", "554 resimta-ch2-18v.sys.comcast.net "
          "comcast 192.0.2.44 Comcast block for spam. Please see "
          "http://postmaster.comcast.net/smtp-error-codes.php#BL000000", "blocked", _XFINITY),
    Reply("comcast", "mx1.comcast.net", "CONN", "554 resimta-ch2-18v.sys.comcast.net comcast "
          "192.0.2.44 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-"
          "error-codes.php#BL000010", "blocked", _XFINITY),
    # Orange
    Reply("orange", "smtp-in.orange.fr", "CONN", "421 mwinf5d45 ME Service refuse. Veuillez "
          "essayer plus tard. Service refused, please try later. OFR_999 [999]", "blocked",
          _ORANGE),
    # Mail.ru
    Reply("mailru", "mxs.mail.ru", "DATA", "550 5.7.1 This message was not accepted due to "
          "domain owner DMARC policy (RFC 7489) https://help.mail.ru/mail-help/postmaster/"
          "dmarc", "authfailure", _MAILRU),
    Reply("mailru", "mxs.mail.ru", "RCPT", "550 Message was not accepted -- invalid mailbox. "
          "Local mailbox someone@mail.ru is unavailable: user not found", "userunknown",
          _MAILRU2),
    Reply("mailru", "mxs.mail.ru", "RCPT", "552 Message was not accepted -- user quota "
          "exceeded", "mailboxfull", _MAILRU2),
    # Proofpoint
    Reply("proofpoint", "mx0a-001.pphosted.com", "CONN", "550 5.7.0 Local Policy Violation",
          "blocked", _PP),
    Reply("proofpoint", _IMX, "CONN", "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/"
          "?ip=192.0.2.44", "blocked", _PP2),
    # Mimecast
    Reply("mimecast", "us-smtp-inbound-1.mimecast.com", "RCPT", "451 Internal resource "
          "temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451",
          "badreputation", _MIMECAST),
    Reply("mimecast", "us-smtp-inbound-1.mimecast.com", "MAIL", "421 Sender address blocked",
          "rejected", _MIMECAST),
    Reply("mimecast", "us-smtp-inbound-1.mimecast.com", "RCPT", "550 Invalid Recipient - "
          "https://community.mimecast.com/docs/DOC-1369#550", "userunknown", _MIMECAST),
    # Barracuda
    Reply("barracuda", "mx.example.com", "DATA", "554 Service unavailable; Client host "
          "[192.0.2.44] blocked using Barracuda Reputation; http://www.barracudanetworks.com/"
          "reputation/?pr=1&ip=192.0.2.44", "blocked", _BARRACUDA),
)

_DSN = """From: MAILER-DAEMON@mta.sender.example (Mail Delivery System)
To: bounces@sender.example
Subject: Undelivered Mail Returned to Sender
Date: Mon, 02 Mar 2026 10:00:00 +0000
Message-Id: <20260302100000.{n}@mta.sender.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{n}.B/mta.sender.example"

This is a MIME-encapsulated message.

--{n}.B/mta.sender.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mta.sender.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{rcpt}>: host {mx}[192.0.2.1] said: {reply} (in reply to {cmd})

--{n}.B/mta.sender.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mta.sender.example
X-Postfix-Queue-ID: 4Q{n}
X-Postfix-Sender: rfc822; bounces@sender.example
Arrival-Date: Mon,  2 Mar 2026 09:59:58 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: {status}
Remote-MTA: dns; {mx}
Diagnostic-Code: smtp; {reply}

--{n}.B/mta.sender.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: news@sender.example
To: {rcpt}
Subject: March newsletter
Message-Id: <m{n}@sender.example>

--{n}.B/mta.sender.example--
"""

_COMMANDS = {"RCPT": "RCPT TO command", "MAIL": "MAIL FROM command",
             "DATA": "end of DATA command", "CONN": "initial greeting"}


def to_dsn(n: int, row: Reply) -> bytes:
    """The DSN Postfix would write after ``row.reply`` (``x.0.0`` without an enhanced code)."""
    import re

    m = re.search(r"\b([245])\.\d{1,3}\.\d{1,3}\b", row.reply)
    status = m.group(0) if m else f"{row.reply[0]}.0.0"
    domain = {"google": "gmail.com", "microsoft": "outlook.com", "yahoo": "yahoo.com",
              "apple": "icloud.com", "gmx": "gmx.de", "comcast": "comcast.net",
              "orange": "orange.fr", "mailru": "mail.ru"}.get(row.provider, "example.com")
    return _DSN.format(n=n, rcpt=f"someone{n}@{domain}", mx=row.mx, reply=row.reply,
                       cmd=_COMMANDS[row.command], status=status).encode()
