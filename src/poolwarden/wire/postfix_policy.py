"""Sans-io codec for the Postfix SMTPD policy delegation protocol.

``PolicyReader.feed(bytes)`` returns the complete requests in those bytes
(``name=value`` lines ended by an empty line); ``encode_action(text)`` gives
the reply bytes. Enforces Postfix's own bounds (attr_scan_plain.c: names and
values up to 8,192 characters, at most 1,024 attributes): past them the
reader raises ``ProtocolViolation`` and the server must disconnect without a
reply. A well-framed request with bad content (NUL, invalid UTF-8, duplicate
or nameless attributes) comes back with ``problem`` set, to be answered 4xx.
Replies are always one printable UTF-8 line of at most 512 bytes.
``route_request`` turns a request into the core's ``RouteRequest`` and
``ActionEncoder`` a core ``Decision`` into the action text (``FILTER
pw-<ip>:``, ``HOLD``, ``REJECT``, ``451 4.3.5``); ``SPLIT_ACTION`` and
``cannot_decide`` are the two answers that are not a decision. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from poolwarden.core.policy import RouteRequest
from poolwarden.core.snapshot import Action, Decision
from poolwarden.core.transports import transport_name

MAX_VALUE = 8192
MAX_NAME = 8192
MAX_ATTRIBUTES = 1024
MAX_LINE = MAX_NAME + 1 + MAX_VALUE + 1  # name '=' value '\n'
# Not a Postfix bound: real requests are a few hundred bytes; this caps what one
# connection can make us buffer (1,000 connections × 256 KB at worst).
MAX_REQUEST = 256 * 1024
MAX_REPLY = 512


class ProtocolViolation(Exception):  # noqa: N818 - the protocol's own word
    """The peer broke the protocol's bounds: disconnect, do not reply."""


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    attrs: dict[str, str]
    problem: str | None = None  # set when the request is framed but unusable

    def get(self, name: str) -> str:
        return self.attrs.get(name, "")


class PolicyReader:
    """Incremental request parser; feed it whatever the socket returned.

    Works a whole request at a time: find its end, then one NUL check, one
    UTF-8 decode and a split, instead of per-attribute byte juggling.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> bool:
        """Whether part of a request has arrived without its end."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[PolicyRequest]:
        old = len(self._buffer)
        buffer = self._buffer + data if old else data
        requests: list[PolicyRequest] = []
        start = 0
        while True:
            if buffer.startswith(b"\n", start):  # an empty request
                requests.append(PolicyRequest({}))
                start += 1
                continue
            end = buffer.find(b"\n\n", start)
            if end == -1:
                break
            requests.append(_parse_block(buffer[start:end]))
            start = end + 2
        rest = buffer[start:] if start else buffer
        if rest:
            _check_partial(rest, max(0, old - start))
        self._buffer = rest
        return requests


def _check_partial(rest: bytes, checked: int) -> None:
    """Bounds on a request still arriving, so a peer cannot grow our buffer at will.

    Lines that ended before ``checked`` were checked by an earlier call.
    """
    if len(rest) > MAX_REQUEST:
        raise ProtocolViolation(f"request larger than {MAX_REQUEST} bytes")
    last = rest.rfind(b"\n")
    if len(rest) - last - 1 > MAX_LINE:
        raise ProtocolViolation(f"attribute line of more than {MAX_LINE} bytes")
    if last >= checked:
        first = rest.rfind(b"\n", 0, checked) + 1
        _check_lines(rest[first:last].split(b"\n"))
    if rest.count(b"\n") >= MAX_ATTRIBUTES:
        raise ProtocolViolation(f"more than {MAX_ATTRIBUTES} attributes")


def _parse_block(block: bytes) -> PolicyRequest:
    """One request's bytes (its lines, without the empty line that ended it)."""
    if len(block) > MAX_REQUEST:
        raise ProtocolViolation(f"request larger than {MAX_REQUEST} bytes")
    raw_lines = block.split(b"\n")
    if len(raw_lines) > MAX_ATTRIBUTES:
        raise ProtocolViolation(f"more than {MAX_ATTRIBUTES} attributes")
    if b"\0" in block:
        _check_lines(raw_lines)
        return PolicyRequest({}, "NUL byte in an attribute")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        _check_lines(raw_lines)
        return PolicyRequest({}, "attribute is not valid UTF-8")
    attrs: dict[str, str] = {}
    problem: str | None = None
    for line in text.split("\n"):
        name, sep, value = line.partition("=")
        if len(line) > MAX_VALUE and (len(name) > MAX_NAME or len(value) > MAX_VALUE):
            raise ProtocolViolation("attribute name or value longer than 8192 characters")
        if not sep or not name:
            problem = problem or "attribute without a name"
        elif not name.isascii():
            problem = problem or "attribute name is not ASCII"
        elif name in attrs:
            problem = problem or "an attribute is repeated"  # no peer text: logs stay clean
        else:
            attrs[name] = value
    return PolicyRequest(attrs, problem)


def _check_lines(raw_lines: list[bytes]) -> None:
    for line in raw_lines:
        name, _, value = line.partition(b"=")
        if len(name) > MAX_NAME or len(value) > MAX_VALUE:
            raise ProtocolViolation("attribute name or value longer than 8192 bytes")


def clean_text(text: str, limit: int = 400) -> str:
    """One printable line: control characters become spaces, length is capped."""
    if text.isprintable() and len(text) <= limit and text.isascii():
        return text
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    encoded = cleaned.encode("utf-8")[:limit]
    return encoded.decode("utf-8", "ignore")


def encode_action(action: str) -> bytes:
    """The reply bytes for one action: ``action=<one line>\\n\\n``, at most 512 bytes."""
    body = clean_text(action, MAX_REPLY - len("action=\n\n"))
    return b"action=" + body.encode("utf-8") + b"\n\n"


_new_tuple = tuple.__new__

# FILTER is message-wide (the last one wins): a recipient on another route than the
# message's is pushed into a transaction of its own; 4.7.1 is DEFER_IF_PERMIT's own code
SPLIT_ACTION = ("DEFER_IF_PERMIT 4.7.1 poolwarden: this recipient leaves from another route; "
                "send it in a separate transaction")


def route_request(request: PolicyRequest) -> RouteRequest:
    """The core's view of one RCPT request (empty attributes count as absent)."""
    get = request.attrs.get
    # built as the tuple it is, every field in RouteRequest's order (recipient, tenant,
    # sender, sasl_username, client_address, mx_hosts): one per request, and NamedTuple's
    # generated __new__ would cost a Python call more
    return _new_tuple(RouteRequest, (
        get("recipient", ""), None, get("sender") or None, get("sasl_username") or None,
        get("client_address") or None, ()))


def cannot_decide(cause: str) -> str:
    """The fail-safe answer (Postfix's own default action): the mail stays queued."""
    return f"451 4.3.5 poolwarden: {clean_text(cause, 200)}, try again later"


class ActionEncoder:
    """A Decision as the action text Postfix acts on; each IP's FILTER text is built once
    (the hot path answers the same few hundred IPs over and over)."""

    __slots__ = ("_filters",)

    def __init__(self) -> None:
        self._filters: dict[str, str] = {}

    def action(self, decision: Decision) -> str:
        kind = decision.action
        if kind is Action.ROUTE and decision.ip:
            action = self._filters.get(decision.ip)
            if action is None:
                action = self._filters[decision.ip] = f"FILTER {transport_name(decision.ip)}:"
            return action
        if kind is Action.HOLD:
            return "HOLD " + clean_text(decision.reason, 300)
        if kind is Action.REJECT:
            return "REJECT 5.7.1 " + clean_text(decision.reason, 300)
        return "451 4.3.5 poolwarden: " + clean_text(decision.reason, 300)
