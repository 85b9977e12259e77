"""Postfix log lines in, ``LogRecord`` values out: the pure parser under ``ingestd``.

Reads the three header forms Postfix lines arrive in and the message behind them:

* syslog (RFC 3164): ``Nov  3 19:49:08 mta postfix/smtp[123]: ...`` (day padded with a space);
* Postfix's own ``maillog_file`` (postlogd, 3.4+): the same, but ``strftime("%b %d %H:%M:%S")``,
  so the day is zero-padded: ``Nov 03 19:49:08 ...`` (the format string in Postfix 3.7's
  libpostfix-util); a fraction after the seconds is accepted too;
* RFC 3339, as rsyslog's file format, journald exports and newer loggers write it:
  ``2026-11-23T19:49:08.123456+00:00 mta postfix/smtp[123]: ...`` (``Z``/``+0000`` too).

The year-less forms need a year: pass ``year`` or a ``reference`` time (the file's mtime, say;
a date more than two days after it is taken to be last year's). ``LogParser`` also follows the
Dec → Jan rollover through a file. Times are read in ``tz`` (default UTC), since syslog stamps
are local time. Without a year or a reference the timestamp is ``None``.

Only Postfix programs are parsed (``syslog_name/service[pid]``: ``postfix/smtp``,
``postfix-239.58.50.50/qmgr``, ``postfix/pw-127-0-0-11/smtp``); other programs (amavis,
dovecot, opendkim…) and anything malformed give ``None``, and no text makes it raise.
``parse_message(program, message)`` parses a message without a header (the whyscream form).

A queue id is Postfix's short form (upper-case hex, 6+ characters) or long form
(``enable_long_queue_ids``: 10+ characters of time, ``z``, the inode), both within
``[0-9A-Za-z]+``; the tighter shapes keep ``warning:``, ``statistics:``, ``NOQUEUE:`` or
``Deleted:`` from passing for an id (NOQUEUE lines have ``queue_id`` None).

The header is read eagerly, the message lazily: ``record.kind`` / ``record.fields`` (text
values, by kind: ``wire.postfix_message``, which takes messages apart) are computed on first
use, so lines nobody looks at cost one regex match. No I/O, no clock, no global state but
caches.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Final

from poolwarden.wire.postfix_message import LEVELS, parse_fields

_MONTHS: Final = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_FUTURE_SLACK: Final = 2 * 86400.0  # a year-less date this far past the reference is last year's

_HEX: Final = "0123456789ABCDEF"
# The common header (syslog or maillog_file stamp, program with a '/', pid) in one match that
# also takes off a leading "word: ", the queue id candidate. `.*` under DOTALL is sre's
# fastest scan; the newline it keeps is stripped when the message is looked at.
_HEADER: Final = re.compile(
    r"([A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d{1,9})?) (\S+) ([^\s\[:/]+/[^\s\[:]+)"
    r"\[(\d{1,10})\]: (?:([0-9A-Za-z]+): )?(.*)", re.S)
_HEADER_ISO: Final = re.compile(  # RFC 3339 stamps (tried only for lines starting with a digit)
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) (\S+) "
    r"([^\s\[:/]+/[^\s\[:]+?)(?:\[(\d{1,10})\])?: (?:([0-9A-Za-z]+): )?(.*)", re.S)
_MESSAGE: Final = re.compile(r"(?:([0-9A-Za-z]+): )?(.*)", re.S)
_QID: Final = re.compile(r"([0-9A-F]{6,}|[0-9A-Za-z]{10,}z[0-9A-Za-z]+): ")


def _is_queue_id(token: str) -> bool:
    """Postfix's short id (upper-case hex, 6+) or long id (10+ characters, ``z``, inode)."""
    return (len(token) >= 6 and not token.strip(_HEX)) or token.find("z", 10) >= 0


def _split(token: str | None, rest: str) -> tuple[str | None, str | None, str]:
    """(severity, queue id, rest) from the leading ``word: `` the header regex took off."""
    if token is None:
        return None, None, rest
    if token in LEVELS:  # "warning: QID: text" or "warning: text"
        m = _QID.match(rest)
        return (token, m[1], rest[m.end():]) if m is not None else (token, None, rest)
    if _is_queue_id(token):
        return None, token, rest
    return None, None, f"{token}: {rest}"  # NOQUEUE:, statistics:, Deleted: … are not ids



class LogRecord:
    """One Postfix log line. The header is read eagerly; ``kind`` and ``fields`` (the message
    taken apart) on first use, so lines nobody asks about cost only the header. Immutable in
    use (the lazy parts are computed once)."""

    __slots__ = ("_fields", "_kind", "_level", "_pid", "_rest", "host", "program", "queue_id",
                 "timestamp")

    def __init__(self, timestamp: float | None, host: str | None, program: str,
                 pid: str | None, queue_id: str | None, level: str | None, rest: str) -> None:
        self.timestamp = timestamp  # epoch seconds; None when the year could not be resolved
        self.host = host
        self.program = program  # postfix/pw-127-0-0-11/smtp
        self.queue_id = queue_id  # None for NOQUEUE and for lines about no message
        self._pid = pid
        self._level = level
        self._rest = rest  # the message after the severity and the queue id (maybe + newline)
        self._kind: str | None = None
        self._fields: dict[str, str] | None = None

    @property
    def pid(self) -> int | None:
        return int(self._pid) if self._pid else None

    @property
    def message(self) -> str:
        """The text after ``prog[pid]: ``."""
        head = f"{self._level}: " if self._level is not None else ""
        if self.queue_id is not None:
            head += f"{self.queue_id}: "
        return head + self._rest.rstrip("\r\n")

    @property
    def syslog_name(self) -> str:
        """The part before the service: ``postfix/pw-127-0-0-11``."""
        return self.program.rpartition("/")[0]

    @property
    def service(self) -> str:
        """smtp, lmtp, smtpd, qmgr, cleanup, bounce, error, local, pickup, postsuper…"""
        return self.program.rpartition("/")[2]

    @property
    def transport(self) -> str | None:
        """The master.cf transport named by a per-transport ``syslog_name`` (transport_of)."""
        return transport_of(self.syslog_name)

    @property
    def kind(self) -> str:
        """One of the kind constants of this module."""
        return self.parsed()[0]

    @property
    def fields(self) -> dict[str, str]:
        """The message's parsed values, as text (names by kind: see the module)."""
        return self.parsed()[1]

    def parsed(self) -> tuple[str, dict[str, str]]:
        """``(kind, fields)``, computed on first use (what the correlator calls)."""
        kind = self._kind
        if kind is not None:
            return kind, self._fields  # type: ignore[return-value]  # set with _kind
        kind, fields = parse_fields(self.queue_id, self._level, self._rest.rstrip("\r\n"))
        self._kind, self._fields = kind, fields
        return kind, fields

    def __repr__(self) -> str:
        return (f"LogRecord(timestamp={self.timestamp!r}, host={self.host!r}, "
                f"program={self.program!r}, pid={self.pid!r}, queue_id={self.queue_id!r}, "
                f"kind={self.kind!r}, fields={self.fields!r})")


def transport_of(syslog_name: str) -> str | None:
    """``postfix/pw-127-0-0-11`` → ``pw-127-0-0-11``; ``postfix`` → None.

    The recipe gives each egress transport ``-o syslog_name=<base>/<transport>``, so the
    transport is what follows the first ``/``. Plain ``postfix/smtp`` could be the ``smtp`` or
    the ``relay`` transport (both run the smtp daemon under the base name): unknown, so None.
    """
    base, sep, rest = syslog_name.partition("/")
    return rest if sep and rest else None


@lru_cache(maxsize=4096)
def egress_ip_of(transport: str | None) -> str | None:
    """The source IP a ``pw-…`` transport binds: ``pw-127-0-0-11`` → ``127.0.0.11``.

    The naming (core.transports.transport_name) writes ``.`` and ``:`` both as ``-``, so
    it cannot be fully reversed: four decimal labels 0–255 are read as IPv4; otherwise ``-``
    becomes ``:`` and the result must be a valid IPv6 address (``pw-2001-db8--1`` →
    ``2001:db8::1``). An IPv4-embedded IPv6 address (``::ffff:1.2.3.4`` → ``pw---ffff-1-2-3-4``)
    reads back as a different, valid IPv6 address: that ambiguity is the naming's, not fixable
    here; such addresses must not be used as egress names. Anything else gives None.
    """
    if not transport or not transport.startswith("pw-"):
        return None
    body = transport[3:]
    labels = body.split("-")
    if len(labels) == 4 and all(x.isdigit() and len(x) <= 3 and int(x) <= 255 for x in labels):
        return ".".join(str(int(x)) for x in labels)
    try:
        return str(ipaddress.IPv6Address(body.replace("-", ":")))
    except ValueError:
        return None


def parse_message(program: str, message: str) -> LogRecord:
    """Parse a message without its syslog header (``program`` is e.g. ``postfix/smtp``)."""
    m = _MESSAGE.match(message)
    assert m is not None  # every part is optional
    level, qid, rest = _split(m[1], m[2])
    return LogRecord(None, None, program, None, qid, level, rest)


class LogParser:
    """Stateful line parser: resolves year-less dates and follows the Dec → Jan rollover.

    ``year`` fixes the first line's year; else ``reference`` (epoch seconds: a file's mtime, or
    now) gives it, a date more than two days after the reference counting as last year's.
    From then on the year follows the file: a month more than six below the last one is the
    next year; a stray line more than six months above it belongs to the previous year.
    """

    __slots__ = ("_cache", "_month", "_reference", "_tz", "_year", "last_stamp", "last_time")

    def __init__(self, *, year: int | None = None, reference: float | None = None,
                 tz: tzinfo = UTC) -> None:
        self._year = year
        self._reference = reference
        self._tz = tz
        self._month = 0
        self._cache: dict[str, float] = {}  # "M DD HH" of the current year → epoch of the hour
        self.last_stamp = ""  # the last syslog stamp read and its time (read-only outside)
        self.last_time: float | None = None

    def parse(self, line: str) -> LogRecord | None:
        """One line (a trailing newline is ignored) → its record, or None if not Postfix's."""
        m = _HEADER.match(line)
        if m is not None:
            stamp, host, prog, pid, token, rest = m.groups()
            timestamp = self.last_time if stamp == self.last_stamp else self.stamp_time(stamp)
        else:
            m = _HEADER_ISO.match(line) if line[:1].isdigit() else None
            if m is None:
                return None
            iso, host, prog, pid, token, rest = m.groups()
            timestamp = self._iso_time(iso)
        if token is None:
            return LogRecord(timestamp, host, prog, pid, None, None, rest)
        if len(token) >= 6 and not token.strip(_HEX):  # the usual: a short queue id
            return LogRecord(timestamp, host, prog, pid, token, None, rest)
        level, qid, rest = _split(token, rest)
        return LogRecord(timestamp, host, prog, pid, qid, level, rest)

    def stamp_time(self, stamp: str) -> float | None:
        """The time of a syslog stamp read now (it becomes ``last_stamp``)."""
        timestamp = self._syslog_time(stamp)
        self.last_stamp, self.last_time = stamp, timestamp
        return timestamp

    def _syslog_time(self, stamp: str) -> float | None:
        mon, day, hms = stamp.split()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        hms, _, fraction = hms.partition(".")
        frac = "." + fraction if fraction else None
        year = self._year
        if year is None:
            if self._reference is None:
                return None
            year = self._first_year(month, day, hms)
            self._year = year
            self._month = month
        elif month < self._month - 6:  # Dec → Jan
            year += 1
            self._year = year
            self._cache.clear()
        elif month > self._month + 6 and self._month:  # a stray line from before New Year
            return _epoch(year - 1, month, int(day), hms, self._tz, frac)
        self._month = month
        key = f"{month} {day} {hms[:2]}"
        base = self._cache.get(key)
        if base is None:
            try:
                base = datetime(year, month, int(day), int(hms[:2]), tzinfo=self._tz).timestamp()
            except ValueError:  # Feb 30 and the like
                return None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = base
        seconds = base + int(hms[3:5]) * 60 + int(hms[6:8])
        return seconds + float(frac) if frac else seconds

    def _first_year(self, month: int, day: str, hms: str) -> int:
        assert self._reference is not None
        year = datetime.fromtimestamp(self._reference, self._tz).year
        at = _epoch(year, month, int(day), hms, self._tz, None)
        if at is not None and at > self._reference + _FUTURE_SLACK:
            return year - 1
        return year

    def _iso_time(self, iso: str) -> float | None:
        try:
            parsed = datetime.fromisoformat(iso)
        except ValueError:  # e.g. more than six fraction digits
            try:
                parsed = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", iso))
            except ValueError:
                return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self._tz)
        if self._year is None or parsed.year != self._year:
            self._cache.clear()
        self._year, self._month = parsed.year, parsed.month
        self.last_stamp = ""
        return parsed.timestamp()


def _epoch(year: int, month: int, day: int, hms: str, tz: tzinfo,
           frac: str | None) -> float | None:
    try:
        at = datetime(year, month, day, int(hms[:2]), int(hms[3:5]), int(hms[6:8]), tzinfo=tz)
    except ValueError:
        return None
    return at.timestamp() + (float(frac) if frac else 0.0)


def parse_line(line: str, *, year: int | None = None, reference: float | None = None,
               tz: tzinfo = UTC) -> LogRecord | None:
    """Parse one line on its own (no rollover tracking; use ``LogParser`` for a file)."""
    return LogParser(year=year, reference=reference, tz=tz).parse(line)
