"""The reply catalogue: what mailbox providers and filtering services document they reply.

Its one job is to *be the table*, as data: one ``Entry`` per documented reply (or family
of replies) of Google, Microsoft (Outlook.com and Microsoft 365), Yahoo/AOL, Apple
iCloud, Comcast, GMX/web.de, Orange, Mail.ru and the filtering services Proofpoint,
Mimecast, Barracuda and Cloudmark; plus ``CAUSES``, the explicit causes any server may
write in its reply text (a blocklist listing, a missing PTR record, an SPF failure...).
Every entry carries the sisimai-5 reason it means, whether it is a hard bounce, what it
is *about* (``ABOUT``: the sending IP, the sending domain, the content, the recipient,
the sender address, the sending rate, the receiving system) and the URL of the page
that documents it. No matching logic lives here and nothing is compiled at import:
``wire.bounce_classify`` compiles the table once, on first use.

How an entry is written: ``pattern`` is a regex over the normalised reply (lower case,
whitespace collapsed to one space); a named group ``code`` in it captures the
provider's own code (``TSS04``, ``S3150``, ``OFR_416``...), else ``code`` names it
statically; ``host`` (a regex searched in the remote MTA name and the recipient domain)
gates an entry to the provider's servers when its words could come from anyone;
``status`` / ``reply`` constrain the enhanced status and the reply code (full match).
Temporary replies are never hard whatever ``hard`` says (``bounce_classify.is_hard``).

Length: past the 600-line guide on purpose; it is a declared data table, one row per
documented reply with its source. Keep logic out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ABOUT", "CAUSES", "PROVIDERS", "Entry"]

# What a reply is about: who must act, and which reputation it says something of.
ABOUT = frozenset({"ip", "domain", "content", "recipient", "sender", "rate", "system"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One documented reply: pattern -> reason, hard/soft, what it is about, source URL."""

    id: str
    provider: str
    reason: str
    about: str
    pattern: str
    source: str
    code: str = ""  # the provider's code, when the pattern has no ``code`` group
    hard: bool = False
    host: str | None = None
    status: str | None = None
    reply: str | None = None
    command: str | None = None  # the SMTP command the reply must have answered


# Provider host names (remote MTA, reporting MTA or the recipient's domain).
H_GOOGLE = r"google\.com|googlemail\.com|gmail\.com"
H_MS = (r"outlook\.com|hotmail\.|live\.com|msn\.com|onmicrosoft\.com|exchangelabs\.com"
        r"|office365\.com")
H_YAHOO = r"yahoodns\.net|yahoo\.|aol\.com|ymail\.com|rocketmail\.com"
H_YAHOO_MX = r"yahoodns\.net"
H_APPLE = r"icloud\.com|me\.com|mac\.com|apple\.com"
H_COMCAST = r"comcast\.net|xfinity\.com"
H_UI = r"gmx\.|web\.de|mail\.com|1and1\.|ionos\."
H_ORANGE = r"orange\.fr|wanadoo\.fr|laposte\.net|mwinf"
H_MAILRU = r"mail\.ru|bk\.ru|list\.ru|inbox\.ru|corp\.mail\.ru"
H_PROOFPOINT = r"pphosted\.com|ppe-hosted\.com|proofpoint\.com"
H_MIMECAST = r"mimecast\.com|mimecast-offshore\.com"
H_BARRACUDA = r"barracudanetworks\.com|barracuda\.com|ess\.barracuda"

# The documentation pages (the providers' own, where they publish one).
GOOGLE = "https://support.google.com/a/answer/3726730"
GOOGLE_SENDERS = "https://support.google.com/mail/answer/81126"
GOOGLE_BLOCKED = "https://support.google.com/mail/answer/188131"
MS_NDR = ("https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/"
          "non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online")
MS_OLC = "https://sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx"
MS_BANNED = "https://sender.office.com/"
YAHOO = "https://senders.yahooinc.com/smtp-error-codes/"
APPLE = "https://support.apple.com/en-us/102322"
COMCAST = "https://postmaster.comcast.net/mail-error-codes.html"
XFINITY = "https://www.xfinity.com/support/articles/email-errors"
GMX = "https://postmaster.gmx.net/en/error-messages"
WEBDE = "https://postmaster.web.de/en/error-messages"
ORANGE = "https://postmaster.orange.fr/"
MAILRU = "https://help.mail.ru/mail/postmaster/"
PROOFPOINT = "https://www.proofpoint.com/us/postmaster"
PROOFPOINT_IPCHECK = "https://ipcheck.proofpoint.com/"
MIMECAST = ("https://mimecastsupport.zendesk.com/hc/en-us/articles/"
            "34000709564691-Policies-Mimecast-SMTP-Error-Codes")
BARRACUDA = "https://www.barracudacentral.org/rbl"
CLOUDMARK = "https://cloudmark.com/en/knowledgebase/cloudmark-sender-intelligence/test-1"
SPAMHAUS = "https://www.spamhaus.org/faq/section/DNSBL%20Usage"
RFC3463 = "https://www.rfc-editor.org/rfc/rfc3463"
RFC5321 = "https://www.rfc-editor.org/rfc/rfc5321"
POSTFIX = "https://www.postfix.org/postconf.5.html"


def _e(id_: str, provider: str, reason: str, about: str, pattern: str, source: str,
       **kw: object) -> Entry:
    return Entry(id_, provider, reason, about, pattern, source, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Provider-specific replies: a provider's own code or wording. First match wins, so the
# narrower entries of a provider come before its broader ones.
PROVIDERS: tuple[Entry, ...] = (
    # ---- Google (Gmail, Google Workspace): support.google.com/a/answer/3726730
    _e("google-nouser", "google", "userunknown", "recipient",
       r"the email account that you tried to reach does not exist", GOOGLE, hard=True),
    _e("google-nodomain", "google", "hostunknown", "recipient",
       r"(?:we weren'?t able to find the recipient domain|recipient domain .* not found)",
       GOOGLE, hard=True),
    _e("google-disabled", "google", "suspend", "recipient",
       r"the (?:email )?account that you tried to reach is (?:disabled|inactive)", GOOGLE),
    _e("google-overquota", "google", "mailboxfull", "recipient",
       r"(?:inbox is out of storage space|account that you tried to reach is over quota"
       r"|email quota exceeded)", GOOGLE),
    _e("google-lowrep", "google", "badreputation", "ip",
       r"very low reputation of the sending (?P<code>ip|domain)", GOOGLE_BLOCKED),
    _e("google-unsolicited-rate", "google", "blocked", "ip",
       r"(?:unusual rate of (?:unsolicited )?mail|unusual rate of mail)", GOOGLE_BLOCKED,
       code="4.7.28"),
    _e("google-likely-spam", "google", "spamdetected", "content",
       r"(?:this message is likely unsolicited mail|likely suspicious due to the (?!very low)"
       r"|gmail has detected that this message is likely (?:suspicious|unsolicited))",
       GOOGLE_BLOCKED),
    _e("google-whitelist", "google", "blocked", "ip",
       r"ip not in whitelist for rcpt domain", GOOGLE),
    _e("google-dos", "google", "blocked", "ip",
       r"try again later, closing connection", GOOGLE),
    _e("google-ptr", "google", "requireptr", "ip",
       r"(?:does not have a ptr record|forward dns entry does not point to the sending ip)",
       GOOGLE_SENDERS, code="5.7.25"),
    _e("google-dmarc", "google", "authfailure", "domain",
       r"(?:not accepted due to domain'?s dmarc policy|to add a dmarc record)", GOOGLE_SENDERS),
    _e("google-align", "google", "authfailure", "domain",
       r"(?:isn'?t|is not) aligned with either the authenticated spf or dkim", GOOGLE_SENDERS,
       code="5.7.32"),
    _e("google-auth", "google", "authfailure", "domain",
       r"(?:senders to authenticate (?:their email )?with (?:either )?(?:spf|dkim)"
       r"|fails to pass (?:spf|authentication) checks|has an spf record with a hard fail"
       r"|does not have authentication information|the spf record of the sending domain"
       r"|unauthenticated email is not accepted from this domain"
       r"|(?:spf|dkim) authentication didn'?t pass)", GOOGLE_SENDERS),
    _e("google-tls", "google", "failedstarttls", "sender",
       r"(?:must issue a starttls command first|tls required for rcpt domain"
       r"|senders to use tls/ssl|starttls may not be repeated)", GOOGLE),
    _e("google-rfc", "google", "notcompliantrfc", "content",
       r"(?:not rfc 5322 compliant|p=rfcmessagenoncompliant|multiple addresses in from: header)",
       GOOGLE_SENDERS),
    _e("google-size", "google", "mesgtoobig", "content",
       r"exceed(?:ed|s) google'?s message size limit", GOOGLE),
    _e("google-hops", "google", "networkerror", "system", r"message exceeded \d+ hops", GOOGLE),
    _e("google-too-quickly", "google", "speeding", "rate",
       r"(?:receiving mail (?:too quickly|at a rate that prevents additional messages)"
       r"|peak smtp relay limit exceeded)", GOOGLE),
    _e("google-daily-quota", "google", "toomanyconn", "rate",
       r"daily (?:user )?sending quota exceeded", GOOGLE),
    _e("google-too-many-rcpts", "google", "toomanyconn", "rate",
       r"(?:your message has too many recipients|domain policy size per transaction exceeded)",
       GOOGLE),
    _e("google-policy", "google", "policyviolation", "content",
       r"(?:violates .* email policy|has a policy that prohibited the (?:mail|email) that you sent"
       r"|an illegal attachment on your message"
       r"|blocked because its content presents a potential security issue)", GOOGLE),
    _e("google-relay", "google", "norelaying", "sender",
       r"(?:mail relay denied|invalid credentials for relay)", GOOGLE),
    _e("google-temp", "google", "systemerror", "system",
       r"(?:temporary system problem|mail server temporarily rejected message"
       r"|cannot authenticate due to (?:a )?temporary system problem)", GOOGLE),
    _e("google-busy", "google", "systemfull", "system", r"server busy, try again later", GOOGLE,
       host=H_GOOGLE),
    _e("google-timeout", "google", "expired", "system", r"timeout - closing connection", GOOGLE,
       host=H_GOOGLE),
    # ---- Microsoft: Exchange Online / Microsoft 365 NDRs and Outlook.com postmaster codes
    _e("ms-banned-ip", "microsoft", "blocked", "ip",
       r"(?:banned sending ip|5\.7\.(?P<code>6[0-4]\d)\b)", MS_BANNED),
    _e("ms-blocklist", "microsoft", "blocked", "ip",
       r"on our block list(?: \((?P<code>s\d{4})\))?", MS_OLC),
    _e("ms-scode-block", "microsoft", "blocked", "ip",
       r"\((?P<code>s3140|s3150|s3114|s3115|s844)\)", MS_OLC),
    _e("ms-olc-block", "microsoft", "blocked", "ip",
       r"\b(?P<code>sc-00[1-5]|dy-00[12]|ou-001)\b", MS_OLC),
    _e("ms-olc-content", "microsoft", "badreputation", "domain",
       r"\b(?P<code>ou-002)\b", MS_OLC),
    _e("ms-olc-rate", "microsoft", "badreputation", "ip", r"\b(?P<code>rp-001)\b", MS_OLC),
    _e("ms-olc-conn", "microsoft", "toomanyconn", "rate", r"\b(?P<code>rp-00[23])\b", MS_OLC),
    _e("ms-rate-reputation", "microsoft", "badreputation", "ip",
       r"(?:rate limited due to ip reputation|4\.7\.(?P<code>65[01])\b)", MS_OLC),
    _e("ms-server-busy", "microsoft", "speeding", "rate",
       r"(?:4\.7\.(?P<code>[5-6]\d\d)\b.*(?:server busy|try again later)"
       r"|server busy\. please try again later from)", MS_OLC),
    _e("ms-traffic", "microsoft", "blocked", "ip",
       r"(?:traffic not accepted from this ip|5\.7\.(?P<code>70[0-9]|750)\b)", MS_NDR),
    _e("ms-spam-abuse", "microsoft", "blocked", "ip",
       r"(?:access denied, spam abuse detected|5\.7\.(?P<code>50[1-3])\b)", MS_NDR),
    _e("ms-banned-sender", "microsoft", "rejected", "sender",
       r"(?:access denied, banned sender|5\.7\.(?P<code>511)\b|bad outbound sender)", MS_NDR),
    _e("ms-ipv6", "microsoft", "blocked", "ip",
       r"(?:does not accept email over ipv6|5\.7\.(?P<code>510)\b)", MS_NDR),
    _e("ms-dmarc", "microsoft", "authfailure", "domain",
       r"(?:does not pass dmarc verification|doesn'?t meet the required authentication level"
       r"|must pass either spf or dkim|5\.7\.(?P<code>509|515)\b)", MS_NDR),
    _e("ms-spf", "microsoft", "authfailure", "domain",
       r"(?:sender policy framework violation|spf validation failed|5\.7\.(?P<code>23)\b)",
       MS_NDR),
    _e("ms-rfc", "microsoft", "notcompliantrfc", "content",
       r"(?:message must be rfc 5322 section 3\.6\.2 compliant|5\.7\.(?P<code>512)\b)", MS_NDR),
    _e("ms-relay", "microsoft", "norelaying", "sender",
       r"(?:relay access denied|tenantattribution|5\.7\.(?P<code>64)\b)", MS_NDR),
    _e("ms-nouser", "microsoft", "userunknown", "recipient",
       r"(?:resolver\.adr\.(?:recip(?:ient)?notfound|exrecipnotfound)"
       r"|recipient not found by smtp address lookup|remote server returned unknown recipient"
       r"|requested action not taken: mailbox unavailable \(s20)", MS_NDR, hard=True),
    _e("ms-dbeb", "microsoft", "userunknown", "recipient",
       r"5\.4\.1 .*recipient address rejected: access denied", MS_NDR, hard=True),
    _e("ms-mailbox-full", "microsoft", "mailboxfull", "recipient",
       r"(?:mailbox is full|quotaexceeded|mailbox has exceeded)", MS_NDR, host=H_MS),
    _e("ms-size", "microsoft", "exceedlimit", "content",
       r"(?:message too large for this recipient|recipsizelimit)", MS_NDR),
    _e("ms-restricted", "microsoft", "policyviolation", "sender",
       r"(?:resolver\.rst\.(?:authrequired|notauthorized|restrictedtorecipientspermission)"
       r"|message bounced due to organizational settings|external forwarding"
       r"|5\.7\.(?P<code>12[0-9]|13[3-6]|520)\b)", MS_NDR),
    _e("ms-dns-nodomain", "microsoft", "hostunknown", "recipient",
       r"(?:dns domain .* does not exist|5\.4\.(?P<code>310)\b)", MS_NDR, hard=True),
    _e("ms-no-connection", "microsoft", "networkerror", "system",
       r"(?:message expired, connection refused|5\.4\.(?P<code>316)\b)", MS_NDR),
    _e("ms-loop", "microsoft", "networkerror", "system",
       r"(?:hop count exceeded|5\.4\.(?P<code>14)\b)", MS_NDR),
    _e("ms-expired", "microsoft", "expired", "system",
       r"(?:queue\.expired|5\.4\.(?P<code>30[0-9])\b)", MS_NDR),
    _e("ms-anon", "microsoft", "securityerror", "sender",
       r"(?:client was not authenticated|sender was not authenticated by organization"
       r"|5\.7\.(?P<code>57|12)\b)", MS_NDR),
    # ---- Yahoo / AOL: senders.yahooinc.com/smtp-error-codes
    _e("yahoo-tss04", "yahoo", "rejected", "ip",
       r"\[(?P<code>tss0[1-5]|ts0[1-5])\].*temporarily deferred", YAHOO,
       host=H_YAHOO_MX),
    _e("yahoo-volume", "yahoo", "rejected", "ip",
       r"temporarily deferred due to (?:unexpected volume|user complaints)", YAHOO,
       host=H_YAHOO_MX),
    _e("yahoo-complaints", "yahoo", "badreputation", "ip",
       r"(?:\[(?P<code>tss0[1-5]|ts0[1-5])\] )?messages from .* temporarily deferred due to"
       r" (?:unexpected volume or )?user complaints", YAHOO),
    _e("yahoo-tss09", "yahoo", "blocked", "ip",
       r"(?:\[(?P<code>tss09|tss11|ts03)\]|will be permanently deferred)", YAHOO),
    _e("yahoo-spamhaus", "yahoo", "blocked", "ip",
       r"(?:\[(?P<code>bl2[1-3])\]|because the ip is in spamhaus'?s? list"
       r"|not accepted from ip addresses on spamhaus)", YAHOO),
    _e("yahoo-fromdomain", "yahoo", "rejected", "domain",
       r"unresolvable rfc\.?5321 (?:from )?domain", YAHOO),
    _e("yahoo-auth", "yahoo", "authfailure", "domain",
       r"(?:yahoo requires all senders to authenticate|sender is unauthenticated)", YAHOO),
    _e("yahoo-policy", "yahoo", "policyviolation", "content",
       r"(?:\[(?P<code>ph0\d)\]|not accepted for policy reasons)", YAHOO),
    _e("yahoo-rfc", "yahoo", "notcompliantrfc", "content", r"headers are not rfc compliant",
       YAHOO),
    _e("yahoo-speed", "yahoo", "speeding", "rate", r"user is receiving mail too quickly", YAHOO),
    _e("yahoo-maxmsg", "yahoo", "toomanyconn", "rate", r"max message per connection reached",
       YAHOO),
    _e("yahoo-nouser", "yahoo", "userunknown", "recipient",
       r"(?:dd this user doesn'?t have a .* account|mailbox not found)", YAHOO, hard=True,
       host=H_YAHOO),
    _e("yahoo-disabled", "yahoo", "suspend", "recipient",
       r"(?:is no longer valid|this mailbox is disabled|account has been disabled or "
       r"discontinued)", YAHOO, host=H_YAHOO),
    _e("yahoo-internal", "yahoo", "systemerror", "system", r"internal processing error", YAHOO,
       host=H_YAHOO),
    # ---- Apple iCloud: support.apple.com/102322
    _e("apple-policy", "apple", "blocked", "ip",
       r"\[(?P<code>cs0[1-9]|hm0[1-9])\]", APPLE),
    _e("apple-proofpoint", "apple", "blocked", "ip",
       r"blocked - see https?://(?:support\.proofpoint\.com/dnsbl-lookup|ipcheck\.proofpoint)",
       APPLE),
    _e("apple-dmarc", "apple", "authfailure", "domain",
       r"rejected due to .* dmarc policy", APPLE, host=H_APPLE),
    _e("apple-dbl", "apple", "blocked", "content",
       r"domain present in the spamhaus dbl", APPLE),
    _e("apple-volume", "apple", "speeding", "rate",
       r"deferred due to excessive volume", APPLE),
    _e("apple-inactive", "apple", "userunknown", "recipient", r"inactive email address", APPLE,
       host=H_APPLE, hard=True),
    _e("apple-nouser", "apple", "userunknown", "recipient", r"user does not exist", APPLE,
       host=H_APPLE, hard=True),
    _e("apple-errors", "apple", "toomanyconn", "rate", r"error: too many errors", APPLE,
       host=H_APPLE),
    # ---- Comcast / Xfinity: postmaster.comcast.net/mail-error-codes
    _e("comcast-dynamic", "comcast", "blocked", "ip", r"\b(?P<code>es0000(?:01|10))\b", COMCAST),
    _e("comcast-bl", "comcast", "blocked", "ip", r"\b(?P<code>bl0[01][01][01][01][01]|bl0\d\d)\b",
       COMCAST),
    _e("comcast-rate", "comcast", "speeding", "rate", r"\b(?P<code>rl0000(?:01|10|11)|rl00\d)\b",
       COMCAST),
    _e("comcast-sessions", "comcast", "toomanyconn", "rate", r"too many sessions opened",
       COMCAST),
    _e("comcast-rdns", "comcast", "requireptr", "ip", r"reverse dns failure", COMCAST),
    _e("comcast-nouser", "comcast", "userunknown", "recipient", r"not our customer", XFINITY,
       hard=True, reply="550"),
    _e("comcast-sender-dns", "comcast", "rejected", "domain",
       r"sender domain .*(?:dns lookup failed|does not exist|must resolve)", XFINITY),
    # ---- GMX / web.de (United Internet): no enhanced status codes, a case URL instead
    _e("ui-blocklist", "gmx", "blocked", "ip",
       r"(?:ip address is block ?listed|case\?c=(?P<code>r0[0-9]{3}))", GMX),
    _e("ui-rdns", "gmx", "requireptr", "ip",
       r"(?:bad dns ptr resource record|no ptr resource record|c=(?P<code>rdns))", GMX),
    _e("ui-spf", "gmx", "authfailure", "domain",
       r"reject due to (?:spf|dmarc) policy", GMX),
    _e("ui-policy", "gmx", "spamdetected", "content",
       r"reject due to policy restrictions", WEBDE, host=H_UI),
    _e("ui-header", "gmx", "notcompliantrfc", "content",
       r"(?:header .*(?:invalid|not rfc)|case\?c=(?P<code>hi))", GMX, host=H_UI),
    _e("ui-too-many", "gmx", "toomanyconn", "rate",
       r"too many (?:connections|messages|recipients)", GMX, host=H_UI),
    _e("ui-nouser", "gmx", "userunknown", "recipient",
       r"mailbox unavailable", GMX, host=H_UI, hard=True),
    _e("ui-quota", "gmx", "mailboxfull", "recipient",
       r"exceeded storage allocation", GMX, host=H_UI),
    # ---- Orange / Wanadoo: the OFRnnn_NNN / LPNnnn_NNN label names the cause
    _e("orange-blocked", "orange", "blocked", "ip",
       r"\b(?P<code>(?:ofr|lpn)\w*_(?:101|102|103|510|999))\b", ORANGE),
    _e("orange-conn", "orange", "toomanyconn", "rate",
       r"\b(?P<code>(?:ofr|lpn)\w*_104)\b", ORANGE),
    _e("orange-auth", "orange", "securityerror", "sender",
       r"\b(?P<code>(?:ofr|lpn)\w*_(?:305|402))\b", ORANGE),
    _e("orange-spf", "orange", "authfailure", "domain",
       r"\b(?P<code>(?:ofr|lpn)\w*_(?:401|517))\b", ORANGE),
    _e("orange-sender", "orange", "rejected", "sender",
       r"\b(?P<code>(?:ofr|lpn)\w*_(?:403|405|415|421))\b", ORANGE),
    _e("orange-nouser", "orange", "userunknown", "recipient",
       r"\b(?P<code>(?:ofr|lpn)\w*_416)\b", ORANGE, hard=True),
    _e("orange-full", "orange", "mailboxfull", "recipient",
       r"\b(?P<code>(?:ofr|lpn)\w*_417)\b", ORANGE),
    _e("orange-closed", "orange", "suspend", "recipient",
       r"\b(?P<code>(?:ofr|lpn)\w*_(?:420|426))\b", ORANGE),
    _e("orange-spam", "orange", "spamdetected", "content",
       r"\b(?P<code>(?:ofr|lpn|ouk)\w*_506)\b", ORANGE),
    _e("orange-size", "orange", "mesgtoobig", "content",
       r"\b(?P<code>(?:ofr|lpn)\w*_514)\b", ORANGE),
    # ---- Mail.ru
    _e("mailru-spam", "mailru", "spamdetected", "content",
       r"spam message rejected", MAILRU),
    _e("mailru-ratelimit", "mailru", "speeding", "rate",
       r"(?:ratelimit|too many messages from your ip)", MAILRU, host=H_MAILRU),
    _e("mailru-dmarc", "mailru", "authfailure", "domain",
       r"not accepted due to domain owner dmarc policy", MAILRU),
    _e("mailru-nouser", "mailru", "userunknown", "recipient",
       r"(?:invalid mailbox|user not found)", MAILRU, host=H_MAILRU, hard=True),
    _e("mailru-disabled", "mailru", "suspend", "recipient",
       r"(?:mailbox is disabled|user is terminated|account is disabled)", MAILRU,
       host=H_MAILRU),
    _e("mailru-quota", "mailru", "mailboxfull", "recipient",
       r"(?:mailbox (?:over )?quota|user quota exceeded|mailbox is full)", MAILRU,
       host=H_MAILRU),
    # ---- Proofpoint (hosted filtering, and iCloud's inbound filter)
    _e("proofpoint-pdr", "proofpoint", "blocked", "ip",
       r"(?:ipcheck\.proofpoint\.com|dnsbl-lookup\.cgi|proofpoint dynamic reputation)",
       PROOFPOINT_IPCHECK),
    _e("proofpoint-spam", "proofpoint", "spamdetected", "content",
       r"reject, id=\S+ - (?:spam|bulk)", PROOFPOINT),
    _e("proofpoint-policy", "proofpoint", "blocked", "ip", r"local policy violation",
       PROOFPOINT, host=H_PROOFPOINT),
    # ---- Mimecast: the reply names the policy that refused the mail
    _e("mimecast-greylist", "mimecast", "badreputation", "ip",
       r"internal resources? (?:is |are )?temporarily unavailable", MIMECAST),
    _e("mimecast-blocked-sender", "mimecast", "rejected", "sender",
       r"(?:blocked senders|block policy for (?:header|envelope) from|envelope blocked"
       r"|sender address blocked)", MIMECAST),
    _e("mimecast-spoof", "mimecast", "policyviolation", "sender",
       r"anti-spoofing policy", MIMECAST),
    _e("mimecast-auth", "mimecast", "authfailure", "domain",
       r"(?:spf|dkim|dmarc) sender invalid", MIMECAST),
    _e("mimecast-rbl", "mimecast", "blocked", "ip",
       r"(?:ip temporarily blacklisted|rejected by rbl|ip found on rbl)",
       MIMECAST),
    _e("mimecast-security", "mimecast", "policyviolation", "content",
       r"(?:email rejected due to security policies|content examination policy"
       r"|host network,? not allowed)", MIMECAST),
    _e("mimecast-invalid", "mimecast", "userunknown", "recipient",
       r"(?:invalid recipient|recipient address rejected: user unknown)", MIMECAST,
       host=H_MIMECAST, hard=True),
    _e("mimecast-size", "mimecast", "mesgtoobig", "content", r"maximum email size exceeded",
       MIMECAST),
    # ---- Barracuda (appliances and Email Security Service)
    _e("barracuda-brbl", "barracuda", "blocked", "ip",
       r"(?:barracuda reputation|barracudacentral\.org|b\.barracudacentral)", BARRACUDA),
    _e("barracuda-blocked", "barracuda", "blocked", "ip",
       r"permanent failure for one or more recipients \(\S+:blocked\)", BARRACUDA),
    _e("barracuda-spam", "barracuda", "spamdetected", "content",
       r"(?:message (?:scored too high on spam scale|blocked by barracuda)"
       r"|\(\S+:spam\))", BARRACUDA),
    # ---- Cloudmark Sender Intelligence (used by Comcast, Cox, Earthlink, ...)
    _e("cloudmark-csi", "cloudmark", "badreputation", "ip",
       r"(?:csi\.cloudmark\.com|cloudmark sender intelligence|poor reputation sender)",
       CLOUDMARK),
)


# --------------------------------------------------------------------------------------------
# Explicit causes: words any server may use to say *why*. Applied after the provider
# entries and before the enhanced status code (docs/classification.md): a reply that names
# its cause is classified by it, whatever its status code. The cause named *first* in the
# text wins (what follows is usually advice: "...rejected as spam. Set up SPF records...");
# on a tie, the earlier row, so the table runs from the most specific cause to the broadest.
CAUSES: tuple[Entry, ...] = (
    _e("cause-content-listing", "", "spamdetected", "content",
       r"(?:(?:black|block)listed (?:url|uri|link|domain)s? in|\buribl\b|\bsurbl\b)", SPAMHAUS),
    _e("cause-sender", "", "rejected", "sender",
       r"(?:address (?:that )?has been (?:black|block)listed"
       r"|sender (?:address )?(?:rejected|blocked|denied|refused|not allowed|is blacklisted)"
       r"|(?:mail from|envelope from|envelope sender) .*(?:rejected|refused|denied)"
       r"|sender domain .*(?:not found|does not exist|rejected))", RFC5321),
    _e("cause-blocklist", "", "blocked", "ip",
       r"(?:block ?listed|black ?listed|blocked using|deny ?listed|on (?:our|a|the) (?:block|black)"
       r" ?list|\b(?:dns)?rbl\b|spamhaus|spamcop|sorbs\.net|uceprotect|abuseat\.org"
       r"|barracudacentral|psbl\.|listed (?:at|on|in|by) [\w.-]+\.(?:org|net|com)"
       r"|client host .*blocked|ip (?:address )?(?:is |has been )?(?:blocked|banned)"
       r"|which is an open relay)", SPAMHAUS),
    _e("cause-reputation", "", "badreputation", "ip",
       r"(?:(?:poor|bad|low|negative) (?:ip |domain |sender |sending |email )?reputation"
       r"|reputation (?:is too low|problem))", RFC3463),
    _e("cause-ptr", "", "requireptr", "ip",
       r"(?:reverse dns|\brdns\b|\bptr\b(?: record)?|reverse (?:lookup|hostname|mapping)"
       r"|cannot find your hostname|can'?t resolve your (?:address|hostname)"
       r"|hostname .* does not resolve)", POSTFIX),
    _e("cause-auth", "", "authfailure", "domain",
       r"(?:\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|domainkeys"
       r"|unauthenticated (?:e-?mail|mail)\b|not (?:properly )?authenticated"
       r"|fail(?:ed|s)? (?:to pass )?authentication|authentication (?:check )?fail"
       r"|from:? header .*not aligned|alignment)", GOOGLE_SENDERS),
    _e("cause-userunknown", "", "userunknown", "recipient",
       r"(?:\buser unknown|unknown (?:user|recipient|mailbox|local part)|no such (?:user|mailbox"
       r"|recipient|address)|(?:user|mailbox|recipient|address|account) (?:does not exist"
       r"|doesn'?t exist|not found|unknown)|invalid (?:recipient|mailbox)\b"
       r"|mailbox (?:is )?unavailable(?! or access denied)(?!.*try again)"
       r"|address (?:is )?(?:invalid|not valid)\b)", RFC3463, hard=True,
       command="RCPT"),
    _e("cause-conn", "", "toomanyconn", "rate",
       r"(?:too many (?:connections|concurrent|simultaneous|sessions|parallel)"
       r"|connection (?:limit|rate limit)|max(?:imum)? (?:number of )?connections"
       r"|too many recipients)", RFC3463),
    _e("cause-rate", "", "speeding", "rate",
       r"(?:rate.?limit|rate of (?:mail|messages)|too many (?:messages|mails|e-?mails)"
       r"|too (?:fast|quickly)|sending rate|throttl|excessive volume"
       r"|message rate|(?:hourly|daily) (?:sending )?(?:limit|quota))", RFC3463),
    _e("cause-virus", "", "virusdetected", "content",
       r"(?:\bvirus(?:es)? (?:detected|found)|(?:detected|found|contains?|containing|infected"
       r" with) (?:a |an )?(?:virus|malware)|malware (?:detected|found))", RFC3463),
    _e("cause-spam", "", "spamdetected", "content",
       r"(?:(?:detected|identified|classified|considered|flagged|rejected|scored) as (?:spam"
       r"|bulk|unsolicited)|spam (?:content|score|detected|message|rejected|filter)"
       r"|looks like spam|likely (?:spam|unsolicited)|appears to be (?:spam|unsolicited)"
       r"|content (?:filter|rejected|denied)|spam classification)", RFC3463),
    _e("cause-nodomain", "", "hostunknown", "recipient",
       r"(?:host or domain name not found|domain (?:name )?not found|nxdomain"
       r"|no such domain|domain does not exist|unrouteable address)",
       POSTFIX, hard=True),
    _e("cause-noconnect", "", "networkerror", "system",
       r"(?:connection refused|no route to host|network is unreachable|could not connect)",
       POSTFIX),
    _e("cause-system", "", "systemerror", "system",
       r"(?:temporary (?:system|local|server) (?:problem|failure|error)"
       r"|internal (?:server |processing )?error|server busy)", RFC3463),
)
