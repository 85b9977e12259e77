"""Join the lines of one Postfix message into per-recipient ``Delivery`` values (pure, incremental).

``Correlator.feed(record)`` takes the ``LogRecord``s of ``wire.postfix_log`` in log order and
returns the deliveries that record completes: one per delivery attempt line (smtp, lmtp,
local, virtual, pipe, error/retry, discard), each carrying what earlier lines said about its
message (``MessageInfo``: smtpd ``client=`` and ``sasl_username``, cleanup ``message-id``, qmgr
``from``/``size``/``nrcpt``, pickup, bounce notifications), plus one ``expired`` delivery per
still-deferred recipient when qmgr logs ``status=expired, returned to sender`` (Postfix then
returns the deferred recipients without a line of their own). A ``bounced`` line whose reply
says "message expired" also counts as ``expired`` (``log_status`` keeps the line's word).

Message identity is (host, queue id). A message ends with ``removed`` (qmgr or postsuper) or a
cleanup reject/discard (never queued). Queue ids come back: a new ``client=`` or pickup line,
or a second ``message-id``, for an id still open starts a fresh message (the end was lost or
the short id was reused); the old one is counted in ``superseded``. Memory is bounded: a
message with no line for ``ttl`` seconds (log time, not the clock) is evicted, as are the
oldest past ``max_messages``; both are counted in ``evicted``. A message first seen mid-way
(evicted, or the log started late) still yields its deliveries, with the context missing.

Delivery key (``Delivery.key``): ``"pflog:"`` + 32 hex digits of SHA-256 over host, queue id,
recipient, outcome status, the line's own timestamp (to the microsecond) and ``seq``, a
repeat counter (0, or one more than the previous delivery of the same recipient of the same
message if that one had the same status and timestamp: a line repeated within one second).
It depends only on the line and its message, not on the read position or on state a restart
loses, so re-reading the same lines gives the same keys, while one short queue id on two days
or two hosts gives different keys (docs/testing.md I7 a, d, e). ``first_seen`` and ``attempt``
are kept but deliberately left out of the key: after an eviction or a restart mid-message
they would differ. The source offset docs/testing.md I7 mentions is left out for the same reason
(copytruncate and .gz re-reads move it). No I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final, NamedTuple

from poolwarden.wire.postfix_log import LogParser, LogRecord, egress_ip_of, transport_of
from poolwarden.wire.postfix_message import (
    ACTION,
    CLIENT,
    DELIVERY,
    EXPIRED,
    MESSAGE_ID,
    NOTIFICATION,
    PICKUP,
    QUEUED,
    REMOVED,
)

# Idle seconds before an open message is dropped: Postfix's maximal_queue_lifetime (5 days) plus
# one, since a log may hold nothing between a deferral and the expiry (lightmeter-18 does).
DEFAULT_TTL: Final = 6 * 86400.0
DEFAULT_MAX_MESSAGES: Final = 500_000
# Where in its input a message began, as the caller counts (the ingest: file serial, byte
# offset of the chunk, the parser's year and month there): set ``Correlator.mark`` before
# feeding, and ``oldest_mark()`` tells where re-reading must start to rebuild what is open.
Mark = tuple[int, int, int | None, int]
_NEVER_QUEUED: Final = frozenset({"reject", "milter-reject", "discard", "milter-discard"})


class MessageInfo(NamedTuple):
    """What the lines before a delivery said about its message (shared by its deliveries)."""

    host: str | None
    queue_id: str
    first_seen: float | None = None  # when this correlator first saw the message
    message_id: str | None = None
    sender: str | None = None
    size: int | None = None
    nrcpt: int | None = None
    client_name: str | None = None
    client_ip: str | None = None
    sasl_method: str | None = None
    sasl_username: str | None = None
    notification_of: str | None = None  # this message is Postfix's bounce/DSN for that queue id


class Delivery(NamedTuple):
    """The outcome of one delivery attempt for one recipient of one message.

    A NamedTuple: immutable and ~5x cheaper to build than a frozen dataclass (this is built
    once per delivery line)."""

    time: float | None  # the delivery line's own time (epoch seconds)
    host: str | None
    queue_id: str
    recipient: str | None  # None only for an expiry whose recipients were never seen
    status: str  # sent / deferred / bounced / expired (other Postfix words pass through)
    log_status: str  # the word on the line (qmgr's expiry gives "expired")
    dsn: str | None
    reply: str | None  # the parenthesised text: the remote reply or Postfix's reason
    relay: str | None
    transport: str | None  # from the per-transport syslog_name (postfix/pw-127-0-0-11/smtp)
    egress_ip: str | None  # from a pw-A-B-C-D transport name
    service: str  # the delivery agent: smtp, lmtp, local, virtual, pipe, error; qmgr (expiry)
    message: MessageInfo
    orig_to: str | None = None
    delay: float | None = None
    delays: str | None = None  # "a/b/c/d": before qmgr / in qmgr / connection / transmission
    conn_use: int | None = None
    attempt: int = 1  # attempts seen for this recipient of this message, this one included
    seq: int = 0  # the key's repeat counter (see the module docstring)

    @property
    def key(self) -> str:
        """The idempotency key (composition in the module docstring)."""
        time = "" if self.time is None else f"{self.time:.6f}"
        material = (f"{self.host}\x1f{self.queue_id}\x1f{self.recipient or ''}\x1f"
                    f"{self.status}\x1f{time}\x1f{self.seq}")
        return "pflog:" + hashlib.sha256(material.encode()).hexdigest()[:32]


class _Message:
    __slots__ = (
        "began",
        "client_ip",
        "client_name",
        "first_seen",
        "info",
        "last_seen",
        "message_id",
        "notification_of",
        "nrcpt",
        "recipients",
        "sasl_method",
        "sasl_username",
        "sender",
        "size",
    )

    def __init__(self, now: float | None, began: Mark | None) -> None:
        self.began = began
        self.first_seen = now
        self.last_seen = now
        self.client_name: str | None = None
        self.client_ip: str | None = None
        self.sasl_method: str | None = None
        self.sasl_username: str | None = None
        self.message_id: str | None = None
        self.sender: str | None = None
        self.size: int | None = None
        self.nrcpt: int | None = None
        self.notification_of: str | None = None
        self.info: MessageInfo | None = None  # snapshot, rebuilt after a change
        self.recipients: dict[str | None, Delivery] = {}  # the last delivery per recipient

    def snapshot(self, host: str | None, queue_id: str) -> MessageInfo:
        info = self.info
        if info is None:
            info = self.info = MessageInfo(
                host, queue_id, self.first_seen, self.message_id, self.sender, self.size,
                self.nrcpt, self.client_name, self.client_ip, self.sasl_method,
                self.sasl_username, self.notification_of)
        return info

    def inherit(self, other: _Message) -> None:
        for name in ("client_name", "client_ip", "sasl_method", "sasl_username", "message_id",
                     "sender", "size", "nrcpt", "notification_of"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        self.info = None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class Correlator:
    """Feed records in log order; get deliveries back as their lines arrive."""

    def __init__(self, *, ttl: float = DEFAULT_TTL,
                 max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        self.ttl = ttl
        self.max_messages = max_messages
        self.evicted = 0  # open messages dropped for age or capacity
        self.superseded = 0  # open messages replaced by a new message on the same queue id
        self._messages: dict[tuple[str | None, str], _Message] = {}
        self._routes: dict[str, tuple[str | None, str | None, str]] = {}  # program → route
        self._now: float | None = None
        self._next_sweep = float("-inf")
        self.mark: Mark | None = None  # recorded on each message opened from now on

    @property
    def pending(self) -> int:
        """Messages open (seen, not yet removed or evicted)."""
        return len(self._messages)

    def oldest_mark(self) -> Mark | None:
        """``mark`` as it was when the oldest open message was opened (messages keep their
        opening order)."""
        for message in self._messages.values():
            return message.began
        return None

    def feed(self, record: LogRecord) -> list[Delivery]:
        """The deliveries ``record`` completes (none for a line about no message)."""
        out: list[Delivery] = []
        self.take(record, out)
        return out

    def feed_chunk(self, parser: LogParser, data: bytes, out: list[Delivery]) -> int:
        """``feed_lines`` over the complete lines of ``data`` (bytes as read from the log;
        a tail without a newline is not a line and is ignored); returns how many lines."""
        if data.isascii():  # ASCII decodes several times faster than UTF-8
            lines = data.decode("ascii").split("\n")
        else:
            lines = data.decode("utf-8", "replace").split("\n")
        lines.pop()
        self.feed_lines(parser, lines, out)
        return len(lines)

    def feed_lines(self, parser: LogParser, lines: Iterable[str], out: list[Delivery]) -> None:
        """``feed(parser.parse(line))`` for each line, appending the deliveries to ``out``."""
        parse = parser.parse
        take = self.take
        for line in lines:
            record = parse(line)
            if record is not None:
                take(record, out)

    def take(self, record: LogRecord, out: list[Delivery]) -> None:
        """``feed``'s work, appending to ``out``: the one path every line takes."""
        qid = record.queue_id
        if qid is not None:
            kind, fields = record.parsed()
            self.on(kind, fields, record.host, qid, record.timestamp, record.program, out)

    def on(self, kind: str, fields: dict[str, str], host: str | None, qid: str,
           now: float | None, program: str, out: list[Delivery]) -> None:
        """One parsed line of message ``qid`` (``feed``'s work): deliveries go to ``out``."""
        if now is not None:
            self._now = now
            if now >= self._next_sweep:
                self._sweep(now)
        key = (host, qid)
        messages = self._messages
        if kind == DELIVERY:
            message = messages.get(key) or self._open(key)
            message.last_seen = self._now
            out.append(self._delivery(host, now, program, qid, message, fields))
            return
        if kind == REMOVED:
            messages.pop(key, None)
            return
        if kind == CLIENT:
            message = self._start(key)
            message.client_name = fields.get("client_name")
            message.client_ip = fields.get("client_ip")
            message.sasl_method = fields.get("sasl_method")
            message.sasl_username = fields.get("sasl_username")
            return
        if kind == PICKUP:
            message = self._start(key)
            message.sender = fields.get("from")
            orig = fields.get("orig_id")
            if orig is not None:  # postsuper -r: the message comes back under a new id
                previous = messages.pop((host, orig), None)
                if previous is not None:
                    message.inherit(previous)
            return
        message = messages.get(key) or self._open(key)
        message.last_seen = self._now
        if kind == MESSAGE_ID:
            if message.message_id is not None:  # a second message under this id
                message = self._start(key)
            message.message_id = fields.get("message_id")
            message.info = None
        elif kind == QUEUED:
            message.sender = fields.get("from")
            message.size = _int(fields.get("size"))
            message.nrcpt = _int(fields.get("nrcpt"))
            message.info = None
        elif kind == NOTIFICATION:
            child_key = (host, fields["notice_queue_id"])
            child = messages.get(child_key) or self._open(child_key)
            child.notification_of = qid
            child.info = None
        elif kind == EXPIRED:
            if message.sender is None:
                message.sender = fields.get("from")
                message.info = None
            self._expire(host, now, program, qid, message, out)
        elif kind == ACTION and fields.get("action") in _NEVER_QUEUED \
                and program.rpartition("/")[2] == "cleanup":
            messages.pop(key, None)

    def _open(self, key: tuple[str | None, str]) -> _Message:
        message = _Message(self._now, self.mark)
        self._messages[key] = message
        if len(self._messages) > self.max_messages:
            del self._messages[next(iter(self._messages))]
            self.evicted += 1
        return message

    def _start(self, key: tuple[str | None, str]) -> _Message:
        if self._messages.pop(key, None) is not None:
            self.superseded += 1
        return self._open(key)

    def _sweep(self, now: float) -> None:
        horizon = now - self.ttl
        stale = [k for k, m in self._messages.items()
                 if m.last_seen is not None and m.last_seen < horizon]
        for k in stale:
            del self._messages[k]
        self.evicted += len(stale)
        self._next_sweep = now + max(60.0, self.ttl / 8)

    def _route(self, program: str) -> tuple[str | None, str | None, str]:
        syslog_name, _, service = program.rpartition("/")
        transport = transport_of(syslog_name)
        route = (transport, egress_ip_of(transport), service)
        if len(self._routes) < 10_000:
            self._routes[program] = route
        return route

    def _delivery(self, host: str | None, time: float | None, program: str, qid: str,
                  message: _Message, fields: dict[str, str]) -> Delivery:
        get = fields.get
        return self._deliver(host, time, program, qid, message, fields["to"], fields["status"],
                             get("reply"), get("dsn"), get("relay"), get("orig_to"),
                             get("delay"), get("delays"), get("conn_use"))

    def _deliver(self, host: str | None, time: float | None, program: str, qid: str,
                 message: _Message, recipient: str, status: str, reply: str | None,
                 dsn: str | None, relay: str | None, orig_to: str | None, delay: str | None,
                 delays: str | None, conn_use: str | None) -> Delivery:
        log_status = status
        if status == "bounced" and reply is not None and "message expired" in reply.lower():
            status = "expired"
        route = self._routes.get(program) or self._route(program)
        previous = message.recipients.get(recipient)
        if previous is None:
            attempt, seq = 1, 0
        else:  # seq: the same recipient, status and second again (a repeated line)
            attempt = previous.attempt + 1
            seq = previous.seq + 1 if previous.time == time and previous.status == status else 0
        delivery = Delivery(
            time, host, qid, recipient, status, log_status, dsn, reply, relay, route[0],
            route[1], route[2], message.info or message.snapshot(host, qid), orig_to,
            _float(delay) if delay is not None else None, delays,
            _int(conn_use) if conn_use is not None else None, attempt, seq)
        message.recipients[recipient] = delivery
        return delivery

    def _expire(self, host: str | None, time: float | None, program: str, qid: str,
                message: _Message, out: list[Delivery]) -> None:
        """qmgr gave up: every recipient still deferred is returned to the sender."""
        info = message.snapshot(host, qid)
        service = program.rpartition("/")[2]
        expired_any = False
        for recipient, last in list(message.recipients.items()):
            if last.status != "deferred":
                continue
            expired = last._replace(time=time, status="expired", log_status="expired",
                                    service=service, message=info, delay=None, delays=None,
                                    conn_use=None, seq=0)
            message.recipients[recipient] = expired
            out.append(expired)
            expired_any = True
        if not expired_any:  # the deferrals were before this log (or this correlator) began
            previous = message.recipients.get(None)
            expired = Delivery(time, host, qid, None, "expired", "expired", None, None,
                               None, None, None, service, info,
                               seq=previous.seq + 1 if previous is not None
                               and previous.time == time else 0)
            message.recipients[None] = expired
            out.append(expired)
