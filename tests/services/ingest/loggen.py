"""A Postfix log generator with ground truth, and the configuration its tenants need.

``generate(seed, messages)`` writes the lines Postfix would log for a stream of messages:
smtpd connect / client (with or without SASL) / disconnect, cleanup, qmgr, deliveries through
``pw-A-B-C-D`` egress transports or the plain ``smtp`` transport, deferrals retried and
expired, bounces with Postfix's own notification, NOQUEUE rejects and noise. It returns the
lines, the events an exactly-once ingester must store (``Expected``: time, kind, tenant,
ip, provider, recipient domain), the decision-log rows the routing agent would have
written, and how many deliveries belong to no tenant (never stored).
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from poolwarden.core.events import Event
from poolwarden.ports import DecisionRow

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Tenant(NamedTuple):
    name: str
    domain: str
    sasl: str | None
    client: str | None
    ips: tuple[str, ...]


TENANTS = (
    Tenant("acme", "acme.example", "acme", None, ("127.0.0.11", "127.0.0.12")),
    Tenant("globex", "globex.example", "globex", None, ("127.0.0.11", "127.0.0.12")),
    Tenant("initech", "initech.example", None, None, ("127.0.0.13",)),  # by sender domain
    Tenant("hooli", "hooli.example", None, "10.9.0.5", ("127.0.0.21",)),  # by client address
    Tenant("umbrella", "umbrella.example", None, None, ("127.0.0.22",)),  # by decision log
)
# recipient domain -> (relay host, provider the ingester must find)
DOMAINS = {
    "gmail.com": ("gmail-smtp-in.l.google.com", "google"),
    "outlook.com": ("outlook-com.olc.protection.outlook.com", "microsoft"),
    "yahoo.com": ("mta7.am0.yahoodns.net", "yahoo"),
    "example.org": ("mx.example.org", "other"),
    "corp.example": ("aspmx.l.google.com", "google"),  # Google Workspace: by MX suffix
}
HARD = "550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table"
SOFT = "552 5.2.2 <{r}>: Mailbox full"
DEFER = "451 4.7.1 <{r}>: Recipient address rejected: Greylisted for 5 minutes"


def config_toml(store_url: str) -> str:
    """A configuration with the generator's tenants and egress IPs."""
    ips = sorted({ip for t in TENANTS for ip in t.ips})
    parts = [f'[store]\nurl = "{store_url}"\n']
    for ip in ips:
        parts.append(f'[[ips]]\naddress = "{ip}"\nhelo = "mta{ip.rsplit(".", 1)[1]}.test"\n')
    parts.append('[[pools]]\nname = "shared-good"\nkind = "shared"\ntiers = ["good"]\n'
                 'ips = ["127.0.0.11", "127.0.0.12"]\n')
    parts.append('[[pools]]\nname = "shared-new"\nkind = "shared"\ntiers = ["new", "risky"]\n'
                 'ips = ["127.0.0.13"]\n')
    for t in TENANTS:
        lines = [f'[[tenants]]\nname = "{t.name}"', f'domains = ["{t.domain}"]']
        if t.ips[0].startswith("127.0.0.2"):
            lines.append('plan = "dedicated"')
            lines.append(f'dedicated_ips = ["{t.ips[0]}"]')
        else:
            lines.append('plan = "shared"')
        if t.sasl:
            lines.append(f'sasl_usernames = ["{t.sasl}"]')
        if t.client:
            lines.append(f'client_addresses = ["{t.client}"]')
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


class Expected(NamedTuple):
    time: float
    kind: str
    tenant: str
    ip: str | None
    provider: str
    recipient_domain: str


def observed(events: list[Event]) -> Counter[Expected]:
    return Counter(Expected(e.time, e.kind.value, e.tenant, e.ip, e.provider,
                            e.recipient_domain or "") for e in events)


@dataclass
class Log:
    lines: list[str] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    unknown: int = 0

    def truth(self) -> Counter[Expected]:
        return Counter(self.expected)


def default_start() -> int:
    """Five days ago, on a whole hour: year-less syslog dates resolve against the files'
    modification times (now), so the log must lie in the recent past."""
    return (int(time.time()) // 3600 - 5 * 24) * 3600


def stamp(t: float, fmt: str) -> str:
    tm = time.gmtime(t)
    if fmt == "iso":
        return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + "+00:00"
    return f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {time.strftime('%H:%M:%S', tm)}"


def generate(seed: int, messages: int, *, start: int | None = None, fmt: str = "syslog",
             host: str = "mx1", qid_prefix: str = "") -> Log:
    """``messages`` messages (plus retries, bounces and noise) from ``start`` on."""
    rng = random.Random(seed)
    out = Log()
    t = float(default_start() if start is None else start)
    serial = rng.randrange(0x1000, 0x8000)
    pending: list[tuple[float, int, str, Tenant, str, list[str], str | None, int]] = []

    def emit(at: float, prog: str, pid: int, text: str) -> None:
        out.lines.append(f"{stamp(at, fmt)} {host} {prog}[{pid}]: {text}\n")

    def new_qid() -> str:
        nonlocal serial
        serial += 1
        return f"{qid_prefix}{rng.randrange(0x10, 0xFF):02X}{serial:X}"

    def attempt(at: float, qid: str, tenant: Tenant, rcpt: str, transport: str | None,
                first: bool) -> str:
        domain = rcpt.partition("@")[2]
        relay, provider = DOMAINS[domain]
        prog = f"postfix/{transport}/smtp" if transport else "postfix/smtp"
        ip = None
        if transport:
            ip = transport[3:].replace("-", ".")
        elif tenant.name == "umbrella":
            ip = tenant.ips[0]  # from the decision log
        roll = rng.random()
        status = ("sent" if roll < 0.75 else "deferred" if roll < 0.9 else "bounced") if first \
            else ("sent" if roll < 0.5 else "deferred")
        head = (f"{qid}: to=<{rcpt}>, relay={relay}[192.0.2.{rng.randrange(1, 250)}]:25, "
                f"delay=1.2, delays=0.1/0/0.5/0.6, ")
        if status == "sent":
            emit(at, prog, 2000, head + "dsn=2.0.0, status=sent (250 2.0.0 OK queued)")
            kind = "delivered"
        elif status == "deferred":
            text = DEFER.format(r=rcpt)
            emit(at, prog, 2000, head + f"dsn=4.7.1, status=deferred (host {relay}[192.0.2.9]"
                 f" said: {text} (in reply to RCPT TO command))")
            kind = "deferred"
        else:
            hard = rng.random() < 0.6
            text = (HARD if hard else SOFT).format(r=rcpt)
            dsn = "5.1.1" if hard else "5.2.2"
            emit(at, prog, 2000, head + f"dsn={dsn}, status=bounced (host {relay}[192.0.2.9]"
                 f" said: {text} (in reply to RCPT TO command))")
            kind = "hard_bounce" if hard else "soft_bounce"
        if tenant.name != "nobody":
            out.expected.append(Expected(at, kind, tenant.name, ip, provider, domain))
        else:
            out.unknown += 1
        return status

    def notify(at: float, qid: str, sender: str) -> None:
        nqid = new_qid()
        emit(at, "postfix/cleanup", 300, f"{nqid}: message-id=<{nqid}@{host}.test>")
        emit(at, "postfix/qmgr", 90, f"{nqid}: from=<>, size=3210, nrcpt=1 (queue active)")
        emit(at, "postfix/bounce", 310, f"{qid}: sender non-delivery notification: {nqid}")
        emit(at, "postfix/smtp", 2001, f"{nqid}: to=<{sender}>, relay=mail.tenant.test"
             "[203.0.113.5]:25, delay=0.2, delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 Ok)")
        emit(at, "postfix/qmgr", 90, f"{nqid}: removed")

    nobody = Tenant("nobody", "stranger.example", None, None, ("127.0.0.13",))
    for _ in range(messages):
        t += rng.choice((0, 1, 1, 2))
        while pending and pending[0][0] <= t:
            at, _, qid, tenant, sender, rcpts, transport, tries = heapq.heappop(pending)
            emit(at, "postfix/qmgr", 90, f"{qid}: from=<{sender}>, size=4000, "
                 f"nrcpt={len(rcpts)} (queue active)")
            if tries >= 3:
                emit(at, "postfix/qmgr", 90, f"{qid}: from=<{sender}>, status=expired, "
                     "returned to sender")
                for rcpt in rcpts:
                    domain = rcpt.partition("@")[2]
                    ip = (transport[3:].replace("-", ".") if transport
                          else tenant.ips[0] if tenant.name == "umbrella" else None)
                    if tenant.name != "nobody":
                        out.expected.append(Expected(at, "soft_bounce", tenant.name, ip,
                                                     DOMAINS[domain][1], domain))
                    else:
                        out.unknown += 1
                notify(at, qid, sender)
                emit(at, "postfix/qmgr", 90, f"{qid}: removed")
                continue
            left = [r for r in rcpts if attempt(at, qid, tenant, r, transport, False)
                    == "deferred"]
            if left:
                heapq.heappush(pending, (at + 120, serial, qid, tenant, sender, left, transport,
                                         tries + 1))
            else:
                emit(at, "postfix/qmgr", 90, f"{qid}: removed")
        roll = rng.random()
        if roll < 0.08:  # noise
            ip = f"192.0.2.{rng.randrange(1, 250)}"
            emit(t, "postfix/smtpd", 1100, f"connect from unknown[{ip}]")
            emit(t, "postfix/smtpd", 1100, f"NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1"
                 f" Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
                 "from=<spam@bad.example> to=<info@acme.example> proto=ESMTP helo=<bad>")
            emit(t, "postfix/smtpd", 1100, f"disconnect from unknown[{ip}] ehlo=1 mail=1 "
                 "rcpt=0/1 quit=1 commands=3/4")
            continue
        tenant = TENANTS[rng.randrange(len(TENANTS))] if roll < 0.97 else nobody
        qid = new_qid()
        pid = 1000 + rng.randrange(50)
        client_ip = tenant.client or f"10.1.0.{rng.randrange(1, 250)}"
        # umbrella's mail says nothing about it: only the decision log knows
        sender = f"news@{'bulk-sender.example' if tenant.name == 'umbrella' else tenant.domain}"
        emit(t, "postfix/submission/smtpd", pid, f"connect from app[{client_ip}]")
        identity = f", sasl_method=PLAIN, sasl_username={tenant.sasl}" if tenant.sasl else ""
        emit(t, "postfix/submission/smtpd", pid, f"{qid}: client=app[{client_ip}]{identity}")
        emit(t, "postfix/cleanup", 300, f"{qid}: message-id=<{serial}@{tenant.domain}>")
        nrcpt = 1 if rng.random() < 0.7 else rng.randrange(2, 4)
        emit(t, "postfix/qmgr", 90, f"{qid}: from=<{sender}>, size=4000, nrcpt={nrcpt} "
             "(queue active)")
        emit(t, "postfix/submission/smtpd", pid, f"disconnect from app[{client_ip}] ehlo=1 "
             "auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6")
        transport = None if (rng.random() < 0.2 or tenant.name == "umbrella") else \
            "pw-" + rng.choice(tenant.ips).replace(".", "-")
        rcpts = [f"u{serial}.{n}@{rng.choice(list(DOMAINS))}" for n in range(nrcpt)]
        if tenant.name == "umbrella":
            for rcpt in rcpts:
                out.decisions.append(DecisionRow(
                    at=t, node=host, instance=f"i{qid}", tenant="umbrella", recipient=rcpt,
                    action="FILTER pw-127-0-0-22:", ip=tenant.ips[0], pool=None,
                    rule="dedicated", snapshot_version=1, queue_id=qid))
        left = []
        for rcpt in rcpts:
            status = attempt(t, qid, tenant, rcpt, transport, True)
            if status == "deferred":
                left.append(rcpt)
            elif status == "bounced":
                notify(t, qid, sender)
        if left:
            heapq.heappush(pending, (t + 60, serial, qid, tenant, sender, left, transport, 1))
        else:
            emit(t, "postfix/qmgr", 90, f"{qid}: removed")
    # let every deferred message finish
    while pending:
        t = max(t, pending[0][0])
        at, _, qid, tenant, sender, rcpts, transport, tries = heapq.heappop(pending)
        emit(at, "postfix/qmgr", 90, f"{qid}: from=<{sender}>, size=4000, "
             f"nrcpt={len(rcpts)} (queue active)")
        for rcpt in rcpts:
            domain = rcpt.partition("@")[2]
            relay, provider = DOMAINS[domain]
            prog = f"postfix/{transport}/smtp" if transport else "postfix/smtp"
            ip = (transport[3:].replace("-", ".") if transport
                  else tenant.ips[0] if tenant.name == "umbrella" else None)
            emit(at, prog, 2000, f"{qid}: to=<{rcpt}>, relay={relay}[192.0.2.7]:25, delay=9, "
                 "delays=0/0/1/8, dsn=2.0.0, status=sent (250 2.0.0 OK)")
            if tenant.name != "nobody":
                out.expected.append(Expected(at, "delivered", tenant.name, ip, provider,
                                             domain))
            else:
                out.unknown += 1
        emit(at, "postfix/qmgr", 90, f"{qid}: removed")
    return out
