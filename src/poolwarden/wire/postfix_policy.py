"""Sans-io codec for the Postfix SMTPD policy delegation protocol.

``PolicyReader.feed(bytes)`` returns the complete requests in those bytes
(``name=value`` lines ended by an empty line); ``encode_action(text)`` gives
the reply bytes. Enforces Postfix's own bounds (attr_scan_plain.c: names and
values up to 8,192 characters, at most 1,024 attributes): past them the
reader raises ``ProtocolViolation`` and the server must disconnect without a
reply. A well-framed request with bad content (NUL, invalid UTF-8, duplicate
or nameless attributes) comes back with ``problem`` set, to be answered 4xx.
Replies are always one printable UTF-8 line of at most 512 bytes. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_VALUE = 8192
MAX_NAME = 8192
MAX_ATTRIBUTES = 1024
MAX_LINE = MAX_NAME + 1 + MAX_VALUE + 1  # name '=' value '\n'
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
    """Incremental request parser; feed it whatever the socket returned."""

    __slots__ = ("_attrs", "_buffer", "_problem")

    def __init__(self) -> None:
        self._buffer = b""
        self._attrs: dict[str, str] = {}
        self._problem: str | None = None

    @property
    def pending(self) -> bool:
        """Whether part of a request has arrived without its end."""
        return bool(self._buffer) or bool(self._attrs) or self._problem is not None

    def feed(self, data: bytes) -> list[PolicyRequest]:
        buffer = self._buffer + data if self._buffer else data
        requests: list[PolicyRequest] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end == -1:
                break
            line = buffer[start:end]
            start = end + 1
            if len(line) > MAX_LINE:
                raise ProtocolViolation(f"attribute line of {len(line)} bytes")
            if not line:
                requests.append(PolicyRequest(self._attrs, self._problem))
                self._attrs = {}
                self._problem = None
                continue
            self._add(line)
        rest = buffer[start:]
        if len(rest) > MAX_LINE:
            raise ProtocolViolation(f"attribute line of more than {MAX_LINE} bytes")
        self._buffer = rest
        return requests

    def _add(self, line: bytes) -> None:
        if len(self._attrs) >= MAX_ATTRIBUTES:
            raise ProtocolViolation(f"more than {MAX_ATTRIBUTES} attributes")
        raw_name, sep, raw_value = line.partition(b"=")
        if len(raw_name) > MAX_NAME or len(raw_value) > MAX_VALUE:
            raise ProtocolViolation("attribute name or value longer than 8192 bytes")
        if not sep or not raw_name:
            self._problem = self._problem or "attribute without a name"
            return
        if b"\0" in line:
            self._problem = self._problem or "NUL byte in an attribute"
            return
        try:
            name = raw_name.decode("ascii")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            self._problem = self._problem or "attribute is not valid UTF-8"
            return
        if name in self._attrs:
            self._problem = self._problem or f"attribute '{name}' repeated"
            return
        self._attrs[name] = value


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
