"""A Postfix log message in, its kind and fields out: the second half of ``wire.postfix_log``.

The message is the text after ``program[pid]: ``, the severity (``warning:`` …) and the queue
id (the header parser takes those off). ``parse_fields(queue_id, level, rest)`` gives
``(kind, fields)`` with text values. Fields by kind: delivery ``to orig_to relay conn_use
delay delays tls dsn status reply``; client ``client_name client_ip client_port sasl_method
sasl_username …``; message_id ``message_id``; queued ``from size nrcpt``; expired ``from
status``; notification ``notice_to notice_type notice_queue_id``; pickup ``uid from
orig_id``; admin ``action [count]``; action (NOQUEUE and queued rejects, filters, milters,
header/body checks) ``action stage client_name client_ip reply code enhanced status_data
text from to proto helo`` (+ ``check_part check_text client value`` for checks,
``rbl_class`` for DNSBL replies); remote ``relay_host relay_ip relay_port reply stage event
text``; tls ``tls_trust direction tls_version tls_cipher tls_bits …``; connect/disconnect
``client_name client_ip [commands]``; lostconn ``event stage client_name client_ip``;
diagnostic ``level text [client_name client_ip]``; statistics and postscreen: see
``_statistics`` and ``_screen``. Also the value parsers of some fields (``split_relay``,
``parse_tls_features``, ``parse_command_counts``). No I/O, no clock, no state; no text
makes it raise.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# Record kinds (plain strings: cheap to compare; the correlator dispatches on them).
DELIVERY: Final = "delivery"  # to=<…>, relay=…, status=… (smtp, lmtp, local, virtual, pipe, error…)
CLIENT: Final = "client"  # smtpd: client=host[ip][, sasl_method=…, sasl_username=…]
MESSAGE_ID: Final = "message_id"  # cleanup: message-id=<…>
QUEUED: Final = "queued"  # qmgr: from=<…>, size=…, nrcpt=… (queue active)
EXPIRED: Final = "expired"  # qmgr: from=<…>, status=expired, returned to sender
REMOVED: Final = "removed"  # qmgr/postsuper: removed
NOTIFICATION: Final = "notification"  # bounce: sender non-delivery notification: QID
PICKUP: Final = "pickup"  # pickup: uid=… from=<…> [orig_id=…]
ADMIN: Final = "admin"  # postsuper: requeued / placed on hold / released from hold
ACTION: Final = "action"  # reject/filter/hold/discard/milter-*/proxy-*/header checks (+ NOQUEUE)
CONNECT: Final = "connect"
DISCONNECT: Final = "disconnect"
LOSTCONN: Final = "lostconn"  # lost connection / timeout / SSL_accept error … after STAGE
TLS: Final = "tls"  # … TLS connection established to|from …
REMOTE: Final = "remote"  # smtp: host X[ip] said / refused to talk / connect to … error
DIAGNOSTIC: Final = "diagnostic"  # warning: / error: / fatal: / panic: / info:
STATISTICS: Final = "statistics"  # anvil, scache
POSTSCREEN: Final = "postscreen"  # postscreen / tlsproxy connection verdicts
OTHER: Final = "other"  # a Postfix line this parser does not take apart

LEVELS: Final = frozenset({"warning", "error", "fatal", "panic", "info"})
_DELIVERY: Final = re.compile(
    r"to=<([^>]*|.*?)>, (?:orig_to=<([^>]*|.*?)>, )?relay=([^,]*), (?:conn_use=(\d+), )?"
    r"delay=([^,]*), delays=([^,]*), (?:tls=([^,]*), )?(?:[\w-]+=[^,]*, )*?"
    r"dsn=([^,]*), status=(\w+)(?: \((.*)\))?", re.S)
_DELIVERY_LOOSE: Final = re.compile(r"to=<(.*?)>, (.*?)status=(\w+)(?: \((.*)\))?", re.S)
_PAIR: Final = re.compile(r"([\w-]+)=(<[^>]*>|[^,\s]*)")
_CLIENT: Final = re.compile(r"client=([^\[\s,]*)\[([^\]]*)\](?::(\d+))?(?:, (.*))?", re.S)
_QUEUED: Final = re.compile(r"from=<([^>]*|.*?)>, (?:size=(\d+), nrcpt=(\d+)|(status=expired))")
_PICKUP: Final = re.compile(r"uid=(\d+) from=<([^>]*|.*?)>(?: orig_id=([0-9A-Za-z]+))?")
_NOTICE: Final = re.compile(r"(sender|postmaster) (.+?) notification: ([0-9A-Za-z]+)")
_ACTION: Final = re.compile(
    r"([a-z][a-z-]*): ([A-Z][A-Z-]*)(?: from ([^\s\[]*)\[([^\]]*)\](?::\d+)?)?: (.*)", re.S)
_CHECK: Final = re.compile(r"([a-z][a-z-]*): (header|body) (.*?) from ([^\s;]+); (.*)", re.S)
_ENVELOPE: Final = re.compile(
    r"(?:from=<(.*?)>)?,? ?(?:to=<(.*?)>)?,? ?(?:proto=([^\s,]+))?,? ?(?:helo=<(.*?)>)?"
    r"(?:: (.*))?$", re.S)
_REPLY: Final = re.compile(
    r"(?:(\d{3})[ -])?(?:(\d\.\d{1,3}\.\d{1,3}) )?(?:<([^>]*)>: )?(.*)", re.S)
_RBL: Final = re.compile(
    r"Service unavailable; (.+?) \[([^\]]*)\] (blocked using \S+?(?:;.*)?)$", re.S)
_PEER: Final = r"([^\s\[]*)\[([^\]]*)\]"
_PEER_TEXT: Final = re.compile(_PEER + r"(?::\d+)?: (.*)", re.S)
_CONNECT: Final = re.compile(r"(dis)?connect from " + _PEER + r"(?::(\d+))?(?: (.*))?", re.S)
_LOSTCONN: Final = re.compile(
    r"(lost connection|timeout|bare <LF> received|improper command pipelining|too many errors)"
    r" after (\S+)(?: \((\d+) bytes\))? from " + _PEER, re.S)
_SSL_ACCEPT: Final = re.compile(r"(SSL_accept error) from " + _PEER + r": (.*)", re.S)
_TLS: Final = re.compile(
    r"(\w+) TLS connection established (to|from) " + _PEER + r"(?::(\d+))?: (\S+) with cipher "
    r"(\S+) \((\d+/\d+) bits\)(?: key-exchange (\S+))?(?: server-signature (\S+)"
    r"(?: \((\d+) bits\))?)?(?: server-digest (\S+))?")
_REMOTE_SAID: Final = re.compile(
    r"(?:host |SASL authentication failed; server )" + _PEER
    + r"(?: said| refused to talk to me): (.*?)(?: \(in reply to (.+) command\))?$", re.S)
_REMOTE_ERROR: Final = re.compile(
    r"(connect to|SSL_connect error to|certificate verification failed for|"
    r"lost connection with|conversation with) " + _PEER + r"(?::(\d+))?(?::| while) (.*)", re.S)
_ANVIL: Final = re.compile(
    r"statistics: max (connection|message|recipient|newtls|auth|cache) (count|rate|size|"
    r"request rate) (\d+)(?:/(\w+))?(?: for \((.*)\))? at (.+)")
_SCACHE: Final = re.compile(r"statistics: (?:(domain|address) lookup hits=(\d+) miss=(\d+) "
                     r"success=(\d+)%|start interval (.+)|max simultaneous (.+))")
_CACHE_CLEANUP: Final = re.compile(
    r"cache (\S+) (full|partial) cleanup: retained=(\d+) dropped=(\d+) entries")
_SCREEN_PEER: Final = re.compile(
    r"(PASS OLD|PASS NEW|WHITELISTED|BLACKLISTED|WHITELIST VETO|ALLOWLISTED|DENYLISTED|"
    r"ALLOWLIST VETO|DISCONNECT|CONNECT from|REJECT|NOQUEUE|DNSBL rank (\d+) for|"
    r"HANGUP after ([\d.]+) from|PREGREET (\d+) after ([\d.]+) from|([A-Z][A-Z -]*[A-Z]) from)"
    r" \[([^\]]*)\]:(\d+)"
    r"(?: to \[[^\]]*\]:\d+)?(?: (?:in tests )?after ([^:\s]+(?: [A-Z]+)?))?")
_DNSBL: Final = re.compile(r"addr (\S+) listed by domain (\S+) as (\S+)")
_MASTER: Final = re.compile(r"(daemon started|reload) -- version ([^,]+), configuration (\S+)"
                     r"|terminating on signal (\d+)")
_SUMMARY: Final = re.compile(r"(Placed on hold|Released from hold|Deleted|Requeued|Expired): "
                      r"(\d+) messages?")
_ADMIN_ACTIONS: Final = frozenset({"requeued", "placed on hold", "released from hold", "expired"})
_TLS_FEATURES: Final = re.compile(
    r"([a-z-]+)(\?)?(?:/(!)?(requiretls)(\?)?(?::(\w+))?)?")
_COUNT: Final = re.compile(r"([a-z]+)=(\d+)(?:/(\d+))?")


def split_relay(relay: str) -> tuple[str, str | None, int | None]:
    """``gmail.test[127.0.0.53]:25`` → ``("gmail.test", "127.0.0.53", 25)``; ``none`` → (none)."""
    name, sep, rest = relay.partition("[")
    if not sep:
        return relay, None, None
    addr, _, tail = rest.partition("]")
    port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    return name, addr, port


def parse_tls_features(value: str) -> dict[str, str] | None:
    """The ``tls=`` value of a delivery line: ``dane/!requiretls:nostarttls`` and the like."""
    m = _TLS_FEATURES.fullmatch(value)
    if m is None:
        return None
    level, undecided, violation, requiretls, rt_undecided, downgrade = m.groups()
    out = {"tls_level": level}
    if undecided:
        out["tls_undecided"] = undecided
    if requiretls:
        out["requiretls"] = requiretls
    if violation:
        out["requiretls_violation"] = violation
    if rt_undecided:
        out["requiretls_undecided"] = rt_undecided
    if downgrade:
        out["requiretls_downgrade"] = downgrade
    return out


def parse_command_counts(text: str) -> dict[str, tuple[int, int]]:
    """smtpd's disconnect counters: ``rcpt=0/1 commands=5/7`` → {name: (accepted, total)}."""
    out: dict[str, tuple[int, int]] = {}
    for name, first, second in _COUNT.findall(text):
        out[name] = (int(first), int(second)) if second else (int(first), int(first))
    return out


def _reply_fields(text: str, out: dict[str, str]) -> None:
    """``550 5.1.1 <a@b>: Recipient address rejected: …`` → code, enhanced, status_data, text."""
    m = _REPLY.match(text)
    if m is None:  # pragma: no cover - the pattern matches any text
        out["text"] = text
        return
    code, enhanced, data, rest = m.groups()
    if code:
        out["code"] = code
    if enhanced:
        out["enhanced"] = enhanced
    rbl = _RBL.match(rest) if data is None else None
    if rbl is not None:
        out["rbl_class"], data, rest = rbl.groups()
    if data is not None:
        out["status_data"] = data
    out["text"] = rest


def _envelope(text: str, out: dict[str, str]) -> None:
    m = _ENVELOPE.match(text)
    if m is None:  # pragma: no cover - every part is optional
        return
    for name, value in zip(("from", "to", "proto", "helo", "value"), m.groups(), strict=True):
        if value is not None:
            out[name] = value


def _action(m: re.Match[str]) -> dict[str, str]:
    action, stage, name, addr, rest = m.groups()
    out = {"action": action, "stage": stage}
    if name is not None:
        out["client_name"] = name
        out["client_ip"] = addr
    cut = rest.rfind("; from=<")
    if cut < 0:
        cut = rest.rfind("; to=<")
    if cut >= 0:
        _envelope(rest[cut + 2:], out)
        rest = rest[:cut]
    out["reply"] = rest
    _reply_fields(rest, out)
    return out


def _check(m: re.Match[str]) -> dict[str, str]:
    action, part, text, client, envelope = m.groups()
    out = {"action": action, "check_part": part, "check_text": text, "client": client,
           "text": f"{part} {text} from {client}"}
    _envelope(envelope, out)
    return out


def _delivery(rest: str) -> dict[str, str] | None:
    m = _DELIVERY.match(rest)
    if m is not None:
        to, orig_to, relay, conn_use, delay, delays, tls, dsn, status, reply = m.groups()
        out = {"to": to, "relay": relay, "delay": delay, "delays": delays, "dsn": dsn,
               "status": status}
        if orig_to is not None:
            out["orig_to"] = orig_to
        if conn_use is not None:
            out["conn_use"] = conn_use
        if tls is not None:
            out["tls"] = tls
        if reply is not None:
            out["reply"] = reply
        return out
    loose = _DELIVERY_LOOSE.match(rest)  # unknown field order or extra fields
    if loose is None:
        return None
    to, middle, status, reply = loose.groups()
    out = {k: v[1:-1] if v.startswith("<") else v for k, v in _PAIR.findall(middle)}
    out["to"] = to
    out["status"] = status
    if reply is not None:
        out["reply"] = reply
    return out


def with_queue_id(rest: str) -> tuple[str, dict[str, str]] | None:
    """The message part after ``QID: ``; None when it is not understood."""
    if rest.startswith("to=<"):
        fields = _delivery(rest)
        return (DELIVERY, fields) if fields is not None else None
    if rest.startswith("client="):
        m = _CLIENT.match(rest)
        if m is None:
            return None
        name, addr, port, tail = m.groups()
        out = {"client_name": name, "client_ip": addr}
        if port is not None:
            out["client_port"] = port
        if tail:
            for key, value in _PAIR.findall(tail):
                out[key] = value
        return CLIENT, out
    if rest.startswith("message-id="):
        value = rest[11:]
        if value.startswith("<") and value.endswith(">"):
            value = value[1:-1]
        return MESSAGE_ID, {"message_id": value}
    if rest.startswith("from=<"):
        m = _QUEUED.match(rest)
        if m is None:
            return None
        sender, size, nrcpt, expired = m.groups()
        if expired:
            return EXPIRED, {"from": sender, "status": "expired"}
        return QUEUED, {"from": sender, "size": size, "nrcpt": nrcpt}
    if rest == "removed":
        return REMOVED, {"text": "removed"}
    if rest.startswith("uid="):
        m = _PICKUP.match(rest)
        if m is None:
            return None
        uid, sender, orig_id = m.groups()
        out = {"uid": uid, "from": sender}
        if orig_id:
            out["orig_id"] = orig_id
        return PICKUP, out
    if rest.startswith(("sender ", "postmaster ")):
        m = _NOTICE.match(rest)
        if m is None:
            return None
        return NOTIFICATION, {"notice_to": m[1], "notice_type": m[2], "notice_queue_id": m[3]}
    if rest in _ADMIN_ACTIONS:
        return ADMIN, {"action": rest}
    m = _ACTION.match(rest)
    if m is not None:
        return ACTION, _action(m)
    m = _CHECK.match(rest)
    if m is not None:
        return ACTION, _check(m)
    m = _REMOTE_SAID.match(rest)
    if m is not None:
        name, addr, reply, stage = m.groups()
        out = {"relay_host": name, "relay_ip": addr, "reply": reply}
        if stage:
            out["stage"] = stage
        return REMOTE, out
    m = _REMOTE_ERROR.match(rest)
    if m is not None:
        return REMOTE, _remote_error(m)
    level, sep, text = rest.partition(": ")
    if sep and level in LEVELS:
        return DIAGNOSTIC, {"level": level, "text": text}
    return OTHER, {}



def _remote_error(m: re.Match[str]) -> dict[str, str]:
    what, name, addr, port, text = m.groups()
    out = {"event": what, "relay_host": name, "relay_ip": addr, "text": text}
    if port is not None:
        out["relay_port"] = port
    return out


def _statistics(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    m = _ANVIL.match(text)
    if m is not None:
        what, measure, value, period, ident, at = m.groups()
        out[f"anvil_{'conn' if what == 'connection' else what}_{measure.replace(' ', '_')}"] = value
        out["at"] = at
        if period:
            out["anvil_period"] = period
        if ident:
            service, addr = _split_ident(ident)
            out["anvil_service"] = service
            out["client_ip"] = addr
        return out
    m = _SCACHE.match(text)
    if m is not None:
        kind, hits, miss, success, start, simultaneous = m.groups()
        if kind:
            out.update(scache_lookup=kind, scache_hits=hits, scache_miss=miss,
                       scache_success=success)
        elif start:
            out["at"] = start
        else:
            for key, value in _PAIR.findall(simultaneous):
                out[f"scache_{key}"] = value
    return out


def _split_ident(ident: str) -> tuple[str, str]:
    """anvil's ``service:address``, where both may hold colons (``127.0.0.1:2525:1.2.3.4``)."""
    start = 0
    while (cut := ident.find(":", start)) >= 0:
        try:
            ipaddress.ip_address(ident[cut + 1:])
        except ValueError:
            start = cut + 1
            continue
        return ident[:cut], ident[cut + 1:]
    return ident, ""


def without_queue_id(msg: str) -> tuple[str, dict[str, str]]:
    """Kind and fields of a message with no queue id and no severity."""
    if msg.startswith("NOQUEUE: "):
        m = _ACTION.match(msg, 9)
        return (ACTION, _action(m)) if m is not None else (OTHER, {})
    if msg.startswith("statistics: "):
        return STATISTICS, _statistics(msg)
    m = _CONNECT.match(msg)
    if m is not None:
        dis, name, addr, port, tail = m.groups()
        out = {"client_name": name, "client_ip": addr}
        if port is not None:
            out["client_port"] = port
        if dis:
            if tail:
                out["commands"] = tail
            return DISCONNECT, out
        return CONNECT, out
    m = _TLS.match(msg)
    if m is not None:
        return TLS, _tls(m)
    m = _LOSTCONN.match(msg) or _SSL_ACCEPT.match(msg)
    if m is not None:
        return LOSTCONN, _lostconn(m)
    m = _ACTION.match(msg)  # proxy-reject: END-OF-MESSAGE: … (no NOQUEUE: prefix)
    if m is not None:
        return ACTION, _action(m)
    m = _REMOTE_ERROR.match(msg)
    if m is not None:
        return REMOTE, _remote_error(m)
    m = _SCREEN_PEER.match(msg)
    if m is not None:
        return POSTSCREEN, _screen(m)
    m = _CACHE_CLEANUP.match(msg)
    if m is not None:
        return STATISTICS, {"cache": m[1], "cleanup_type": m[2], "cache_retained": m[3],
                                  "cache_dropped": m[4]}
    m = _DNSBL.match(msg)
    if m is not None:
        return OTHER, {"client_ip": m[1], "dnsbl_domain": m[2], "dnsbl_result": m[3]}
    m = _MASTER.match(msg)
    if m is not None:
        event, version, config, signal = m.groups()
        if signal:
            return OTHER, {"event": "terminating", "signal": signal}
        return OTHER, {"event": event, "version": version, "config": config}
    m = _SUMMARY.match(msg)
    if m is not None:
        return ADMIN, {"action": m[1], "count": m[2]}
    return OTHER, {}


def _tls(m: re.Match[str]) -> dict[str, str]:
    (trust, direction, name, addr, port, version, cipher, bits, kex, sig, sig_bits,
     digest) = m.groups()
    out = {"tls_trust": trust, "direction": direction, "tls_version": version,
           "tls_cipher": cipher, "tls_bits": bits}
    if direction == "to":
        out.update(relay_host=name, relay_ip=addr)
        if port is not None:
            out["relay_port"] = port
    else:
        out.update(client_name=name, client_ip=addr)
        if port is not None:
            out["client_port"] = port
    for key, value in (("tls_key_exchange", kex), ("tls_signature", sig),
                       ("tls_signature_bits", sig_bits), ("tls_digest", digest)):
        if value is not None:
            out[key] = value
    return out


def _lostconn(m: re.Match[str]) -> dict[str, str]:
    groups = m.groups()
    if len(groups) == 4:  # SSL_accept error from host[ip]: detail
        event, name, addr, detail = groups
        return {"event": event, "client_name": name, "client_ip": addr, "detail": detail}
    event, stage, size, name, addr = groups
    out = {"event": event, "stage": stage, "client_name": name, "client_ip": addr}
    if size is not None:
        out["bytes"] = size
    return out


def _screen(m: re.Match[str]) -> dict[str, str]:
    what, rank, after, pregreet, pregreet_after, violation, addr, port, stage = m.groups()
    out = {"client_ip": addr, "client_port": port}
    if rank is not None:
        out["violation"], out["dnsbl_rank"] = "DNSBL", rank
    elif after is not None:
        out["violation"], out["violation_time"] = "HANGUP", after
    elif pregreet is not None:
        out.update(violation="PREGREET", pregreet_bytes=pregreet, violation_time=pregreet_after)
    elif violation is not None:
        out["violation"] = violation
    elif what not in ("DISCONNECT", "CONNECT from"):
        out["access"] = what
    else:
        out["event"] = what.split()[0]
    if stage is not None:
        out["stage"] = stage
    return out


def parse_fields(queue_id: str | None, level: str | None, rest: str
                 ) -> tuple[str, dict[str, str]]:
    """The kind and fields of a message (``rest``: after the severity ``level`` and the
    queue id, without the line end)."""
    if queue_id is not None and level is None:
        return with_queue_id(rest) or (OTHER, {})
    if level is not None:
        fields = {"level": level, "text": rest}
        if queue_id is None:
            peer = _PEER_TEXT.match(rest)
            if peer is not None:
                fields["client_name"], fields["client_ip"], fields["text"] = peer.groups()
        return DIAGNOSTIC, fields
    return without_queue_id(rest)
