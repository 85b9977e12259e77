"""``Correlator.feed_chunk`` (the ingest's hot loop: bytes as the tailer reads them, chunk
after chunk) and ``feed_lines`` give exactly what ``LogParser.parse`` plus
``Correlator.feed`` give, line by line: the same deliveries (keys, fields, message context)
in the same order and the same correlator and parser state after, on every log of the
corpus, on generated logs in both stamp forms, and on random lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.wire.postfix_correlate import Correlator, Delivery
from poolwarden.wire.postfix_log import LogParser
from tests.services.ingest.loggen import generate

LOGS = Path(__file__).parents[2].parent / "shared" / "corpus" / "postfix-logs"


def _state(correlator: Correlator, parser: LogParser) -> tuple[object, ...]:
    messages = {key: (m.first_seen, m.last_seen, m.sender, m.client_ip, m.sasl_username,
                      m.message_id, m.notification_of, m.size, m.nrcpt, m.info,
                      dict(m.recipients))
                for key, m in correlator._messages.items()}
    return (messages, correlator.evicted, correlator.superseded, parser._year, parser._month,
            parser.last_stamp, parser.last_time)


def _both(lines: list[str], *, year: int | None = 2026, reference: float | None = None,
          ttl: float = 6 * 86400.0, max_messages: int = 500_000) -> None:
    slow, slow_parser = Correlator(ttl=ttl, max_messages=max_messages), \
        LogParser(year=year, reference=reference)
    expected: list[Delivery] = []
    for line in lines:
        record = slow_parser.parse(line)
        if record is not None and record.queue_id is not None:
            expected.extend(slow.feed(record))
    fast, fast_parser = Correlator(ttl=ttl, max_messages=max_messages), \
        LogParser(year=year, reference=reference)
    got: list[Delivery] = []
    fast.feed_lines(fast_parser, lines, got)
    assert got == expected
    assert [d.key for d in got] == [d.key for d in expected]
    assert _state(fast, fast_parser) == _state(slow, slow_parser)
    chunked, chunk_parser = Correlator(ttl=ttl, max_messages=max_messages), \
        LogParser(year=year, reference=reference)
    data = "".join(line + "\n" for line in lines).encode()
    got = []
    for chunk in _chunks(data):  # state carried from one call to the next
        assert chunked.feed_chunk(chunk_parser, chunk, got) == chunk.count(b"\n")
    assert got == expected
    assert [d.key for d in got] == [d.key for d in expected]
    assert _state(chunked, chunk_parser) == _state(slow, slow_parser)


def _chunks(data: bytes, size: int = 4096) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        cut = data.rfind(b"\n", start, start + size) + 1
        if cut <= start:
            cut = data.index(b"\n", start) + 1
        out.append(data[start:cut])
        start = cut
    return out


def _corpus() -> list[object]:
    files = sorted(LOGS.glob("*.log")) if LOGS.is_dir() else []
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {LOGS}"))]
    return [pytest.param(path, id=path.name) for path in files]


@pytest.mark.parametrize("path", _corpus())
def test_corpus_logs_give_the_same_deliveries(path: Path) -> None:
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    _both(lines, year=2020)
    _both(lines, year=None, reference=1_600_000_000.0)  # year from a reference
    _both([line + "\r" for line in lines], year=2020)  # CRLF line ends


@pytest.mark.parametrize("fmt", ["syslog", "iso"])
def test_generated_logs_give_the_same_deliveries(fmt: str) -> None:
    log = generate(3, 400, fmt=fmt)
    lines = [line.rstrip("\n") for line in log.lines]
    _both(lines)
    _both(lines, ttl=600.0, max_messages=50)  # evictions by age and by count
    mixed = [line for pair in zip(lines, generate(4, 400, fmt="iso" if fmt == "syslog"
                                                  else "syslog", host="mx2").lines,
                                  strict=False) for line in (pair[0], pair[1].rstrip("\n"))]
    _both(mixed)


def test_each_line_kind_updates_the_message_as_feed_does() -> None:
    """Context lines after a delivery (the snapshot must be rebuilt), a second message-id
    (a new message), an expiry, a removal and reuse, odd lines, CRLF."""
    h = "Nov 23 19:49:0{} mta postfix/{}[1]: 1A2B3C4D5E: "
    lines = [h.format(0, "smtpd") + "client=x[1.2.3.4], sasl_username=u",
             h.format(1, "smtp") + "to=<a@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(2, "cleanup") + "message-id=<m1@x>",
             h.format(2, "smtp") + "to=<f@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(2, "qmgr") + "from=<s@t.u>, size=12, nrcpt=2 (queue active)",
             h.format(3, "smtp") + "to=<a@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(3, "cleanup") + "message-id=<m2@x>",
             h.format(3, "smtp") + "to=<c@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(4, "smtp") + "to=<d@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(4, "qmgr") + "from=<r@t.u>, size=13, nrcpt=3 (queue active)",
             h.format(4, "smtp") + "to=<e@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=4.0.0, status=deferred (try later)",
             h.format(4, "qmgr") + "from=<s@t.u>, size=x, nrcpt=2 (queue active)",
             h.format(4, "qmgr") + "from=<>, status=expired, returned to sender",
             h.format(5, "smtp") + "to=<b@b.c>, weird, status=sent (ok)",
             h.format(5, "qmgr") + "removed",
             h.format(6, "qmgr") + "removed\r",
             h.format(6, "cleanup") + "message-id=m3@x\r",
             h.format(7, "smtp") + "to=<a@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=2.0.0, status=sent (ok)\r",
             h.format(8, "qmgr") + "from=<q@t.u>, size=3, nrcpt=1 (queue active)\r",
             h.format(9, "smtp") + "to=<a@b.c>, relay=r[1.1.1.1]:25, delay=1, "
             "delays=0/0/0/1, dsn=2.0.0, status=sent (ok)"]
    _both(lines)


HEADERS = st.sampled_from([
    "Nov 23 19:49:08 mta postfix/smtp[1]: ", "Nov  3 19:49:08 mta postfix/pw-1-2-3-4/smtp[1]: ",
    "Dec 31 23:59:59 mta postfix/qmgr[2]: ", "Jan  1 00:00:01 mta postfix/qmgr[2]: ",
    "Jun 15 12:00:00 mta postfix/cleanup[2]: ",
    "Nov 23 19:49:08.123456 mta postfix/qmgr[2]: ", "Nov 23 19:49:08.5 mta postfix/smtp[1]: ",
    "Nov 23 20:00:00 mta postfix/qmgr[2]: 1A2B3C4D5E: ", "Nov 03 19:49:08 mta postfix/smtp[1]: ",
    "2026-11-23T19:49:08Z mta postfix/qmgr[2]: ", "Nov 23 19:49:08 mta postfix/smtpd[3]: ",
    "Nov 23 19:49:08 mta postfix/cleanup[3]: 1A2B3C4D5E: ",
    "Nov 23 19:49:09 mta postfix/smtp[3]: 1A2B3C4D5E: to=<",
    "Nov 23 19:49:09 mx2 postfix/bounce[3]: 1A2B3C4D5E: ",
    "Nov 23 19:49:08 mta postfix/qmgr[3]: 4Kq2Bw0Dz5zJxT: from=<",
    "Nov 23 19:49:08 mta postfix/smtp[3]: warning: 1A2B3C4D5E: ",
    "Nov 23 19:49:08 mta postfix/smtpd[3]: NOQUEUE: reject: RCPT from x[", "",
    "Nov 23 19:49:08 mta dovecot[3]: 1A2B3C4D5E: "])
WORDS = st.sampled_from([
    "to=<a@b.c>, ", "to=<", ">, ", "relay=", "delay=1, ", "delays=0/0/0/1, ", "dsn=2.0.0, ",
    "dsn=4.0.0, ", "status=sent", "status=deferred", "status=bounced", " (", ")", "[", "]",
    ":", "; from=<", " to=<", "client=x[1.2.3.4], sasl_username=u", "message-id=<m@x>",
    "removed", "warning: ", "1A2B3C4D5E: ", "from=<s@t.u>, size=1, nrcpt=1 (queue active)",
    "from=<s@t.u>, status=expired, returned to sender", " ", ",", "\r", "conn_use=2, ",
    "uid=0 from=<a> orig_id=0F5383D", "sender non-delivery notification: 0F5383D",
    "reject: header Subject: x from y; from=<a> to=<b>", "message expired",
    # pieces of the lines the correlator reads (client=, queued, delivery field order)
    "client=", "client=x[1.2.3.4]:25, ", ", sasl_method=PLAIN", "sasl_username=<u>",
    "sasl_username=", "client_ip=9", "client_name=n", ":25", "orig_to=<o@p>, ", "tls=v, ",
    "x-y=z, ", "size=", ", nrcpt=", "message-id=", "<", "=", "1"])


@settings(max_examples=600, deadline=None)
@given(lines=st.lists(st.tuples(HEADERS, st.lists(st.one_of(WORDS, st.text(max_size=8)),
                                                  max_size=10)), max_size=12))
def test_random_lines_give_the_same_deliveries(lines: list[tuple[str, list[str]]]) -> None:
    text = [(header + "".join(body)).replace("\n", " ") for header, body in lines]
    _both(text)
    _both(text, year=None, reference=1_795_392_000.0)
