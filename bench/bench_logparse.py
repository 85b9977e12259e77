"""Benchmark: Postfix log parse + correlate on a generated 1,000,000-line log.

Generates a realistic log (syslog format; smtpd connect/TLS/client with SASL/disconnect,
cleanup, qmgr, per-recipient deliveries through ``pw-A-B-C-D`` egress transports and the
default ``smtp``, deferrals with retries and expiries, bounces with their notifications,
NOQUEUE rejects, postscreen, anvil and warning noise), then times over the same file in one
run:

* ``floor``: a bare Python regex pass (one header+queue-id regex per line, a ``status=``
  regex on delivery lines): the least any Python log reader does;
* ``poolwarden``: ``LogParser.parse`` + ``Correlator.feed`` (parse only is shown too);
* ``pflogsumm`` (Debian package, /usr/sbin/pflogsumm) over the same file.

Prints lines/s for each and the ratios. The target is the full ingest (parse,
correlate, store, exactly-once) ≥ 3x pflogsumm; this bench covers parse + correlate only.
Usage: python bench/bench_logparse.py [--lines N] [--file PATH] [--keep] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import heapq
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from poolwarden.wire.postfix_correlate import Correlator
from poolwarden.wire.postfix_log import LogParser

PFLOGSUMM = "/usr/sbin/pflogsumm"
START = 1_795_392_000  # 2026-11-23 00:00:00 UTC
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
EGRESS = [f"pw-10-0-{i // 250}-{i % 250 + 1}" for i in range(40)] + ["pw-2001-db8--7"]
PROVIDERS = (["gmail.com"] * 40 + ["outlook.com"] * 20 + ["yahoo.com"] * 10 + ["icloud.com"] * 5
             + [f"corp{i}.example" for i in range(25)])
MX = {"gmail.com": "gmail-smtp-in.l.google.com",
      "outlook.com": "outlook-com.olc.protection.outlook.com",
      "yahoo.com": "mta7.am0.yahoodns.net", "icloud.com": "mx01.mail.icloud.com"}
BOUNCES = ("550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table",
           "550-5.7.1 This message is likely unsolicited mail. 550 5.7.1 blocked - gsmtp",
           "552 5.2.2 <{r}>: Mailbox full")
DEFERS = ("451 4.7.1 <{r}>: Recipient address rejected: Greylisted for 5 minutes",
          "421 4.7.0 [10.0.0.1] Our system has detected an unusual rate of mail - gsmtp",
          "452 4.2.2 <{r}> user is over quota, please try again later")


class _Clock:
    __slots__ = ("stamp", "t")

    def __init__(self) -> None:
        self.t = START
        self.stamp = ""
        self.tick(0)

    def tick(self, seconds: int) -> None:
        self.t += seconds
        tm = time.gmtime(self.t)
        self.stamp = f"{MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:" \
                     f"{tm.tm_min:02d}:{tm.tm_sec:02d} mx1 "


def generate(path: str, lines: int, seed: int) -> tuple[int, dict[str, int]]:
    """Write at least ``lines`` log lines to ``path`` (whole messages); return the number
    written and the per-recipient outcomes written (ground truth)."""
    rng = random.Random(seed)
    clock = _Clock()
    counts: collections.Counter[str] = collections.Counter()
    deferred: list[tuple[int, str, str, list[str], str, int]] = []  # due, qid, from, rcpts…
    out: list[str] = []
    written = 0
    serial = 0x1000

    def emit(prog: str, pid: int, msg: str) -> None:
        out.append(f"{clock.stamp}{prog}[{pid}]: {msg}\n")

    def new_qid() -> str:
        nonlocal serial
        serial += 1
        return f"{rng.randrange(0x100000):05X}{serial:X}"

    def deliver(qid: str, rcpt: str, transport: str, first: bool) -> str:
        domain = rcpt.partition("@")[2]
        mx = MX.get(domain, f"mx.{domain}")
        ip = f"198.51.100.{rng.randrange(1, 255)}"
        prog = f"postfix/{transport}/smtp" if transport != "smtp" else "postfix/smtp"
        pid = 20000 + rng.randrange(500)
        roll = rng.random()
        if first:  # first attempts: 86 % sent, 10 % deferred, 4 % bounced
            status = "sent" if roll < 0.86 else "deferred" if roll < 0.96 else "bounced"
        else:  # retries (compressed to minutes): 60 % sent, 38 % deferred again
            status = "sent" if roll < 0.60 else "deferred" if roll < 0.98 else "bounced"
        if rng.random() < 0.5:
            emit(prog, pid, f"Trusted TLS connection established to {mx}[{ip}]:25: TLSv1.3 "
                            "with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)")
        delay = rng.randrange(1, 400) / 100
        kv = (f"{qid}: to=<{rcpt}>, relay={mx}[{ip}]:25, delay={delay}, "
              f"delays=0.01/0/{delay / 2:.2f}/{delay / 2:.2f}, ")
        if status == "sent":
            emit(prog, pid, kv + f"dsn=2.0.0, status=sent (250 2.0.0 OK  {rng.randrange(10**9)} "
                             "- gsmtp)")
        elif status == "deferred":
            text = rng.choice(DEFERS).format(r=rcpt)
            emit(prog, pid, kv + f"dsn={text[4:9]}, status=deferred (host {mx}[{ip}] said: "
                             f"{text} (in reply to RCPT TO command))")
        else:
            text = rng.choice(BOUNCES).format(r=rcpt)
            emit(prog, pid, kv + f"dsn=5{text[5:10]}, status=bounced (host {mx}[{ip}] said: "
                             f"{text} (in reply to RCPT TO command))")
        counts[status] += 1
        return status

    def notify(qid: str, sender: str) -> None:
        nqid = new_qid()
        emit("postfix/cleanup", 3000, f"{nqid}: message-id=<{nqid}@mx1.example.net>")
        emit("postfix/qmgr", 900, f"{nqid}: from=<>, size=3210, nrcpt=1 (queue active)")
        emit("postfix/bounce", 3100, f"{qid}: sender non-delivery notification: {nqid}")
        emit("postfix/smtp", 20001, f"{nqid}: to=<{sender}>, relay=mail.tenant.example"
                                    "[203.0.113.5]:25, delay=0.2, delays=0/0/0.1/0.1, "
                                    "dsn=2.0.0, status=sent (250 2.0.0 Ok)")
        counts["sent"] += 1
        emit("postfix/qmgr", 900, f"{nqid}: removed")

    while written < lines:
        clock.tick(rng.choice((0, 0, 0, 1, 1, 2)))
        roll = rng.random()
        if deferred and deferred[0][0] <= clock.t:
            _, qid, sender, rcpts, transport, tries = heapq.heappop(deferred)
            emit("postfix/qmgr", 900, f"{qid}: from=<{sender}>, size=5120, "
                                      f"nrcpt={len(rcpts)} (queue active)")
            if tries >= 3:  # give up: every still-deferred recipient expires
                emit("postfix/qmgr", 900, f"{qid}: from=<{sender}>, "
                                          "status=expired, returned to sender")
                counts["expired"] += len(rcpts)
                notify(qid, sender)
                emit("postfix/qmgr", 900, f"{qid}: removed")
                continue
            left = [r for r in rcpts if deliver(qid, r, transport, False) == "deferred"]
            if left:
                heapq.heappush(deferred, (clock.t + 600, qid, sender, left, transport, tries + 1))
            else:
                emit("postfix/qmgr", 900, f"{qid}: removed")
        elif roll < 0.80:
            tenant = rng.randrange(2000)
            client_ip = f"203.0.113.{tenant % 250 + 1}"
            pid = 10000 + rng.randrange(100)
            qid = new_qid()
            sender = f"news@t{tenant}.example"
            nrcpt = 1 if rng.random() < 0.7 else rng.randrange(2, 5)
            transport = rng.choice(EGRESS) if rng.random() < 0.8 else "smtp"
            emit("postfix/submission/smtpd", pid, f"connect from app{tenant}.example[{client_ip}]")
            emit("postfix/submission/smtpd", pid, f"Anonymous TLS connection established from "
                 f"app{tenant}.example[{client_ip}]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
                 "(256/256 bits)")
            emit("postfix/submission/smtpd", pid, f"{qid}: client=app{tenant}.example"
                 f"[{client_ip}], sasl_method=PLAIN, sasl_username=t{tenant}")
            emit("postfix/cleanup", 3000,
                 f"{qid}: message-id=<{serial}.{tenant}@t{tenant}.example>")
            emit("postfix/qmgr", 900, f"{qid}: from=<{sender}>, size={rng.randrange(2000, 90000)},"
                                      f" nrcpt={nrcpt} (queue active)")
            emit("postfix/submission/smtpd", pid, f"disconnect from app{tenant}.example"
                 f"[{client_ip}] ehlo=2 starttls=1 auth=1 mail=1 rcpt={nrcpt} data=1 quit=1 "
                 f"commands={7 + nrcpt}")
            left = []
            for n in range(nrcpt):
                rcpt = f"u{rng.randrange(10**6)}.{n}@{rng.choice(PROVIDERS)}"
                status = deliver(qid, rcpt, transport, True)
                if status == "deferred":
                    left.append(rcpt)
                elif status == "bounced":
                    notify(qid, sender)
            if left:
                heapq.heappush(deferred, (clock.t + 300, qid, sender, left, transport, 1))
            else:
                emit("postfix/qmgr", 900, f"{qid}: removed")
        elif roll < 0.86:
            ip = f"192.0.2.{rng.randrange(1, 255)}"
            emit("postfix/smtpd", 11000, f"connect from unknown[{ip}]")
            emit("postfix/smtpd", 11000, f"NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 "
                 f"Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
                 f"from=<spam@bad{rng.randrange(99)}.example> to=<info@t1.example> proto=ESMTP "
                 "helo=<bad.example>")
            emit("postfix/smtpd", 11000, f"disconnect from unknown[{ip}] ehlo=1 mail=1 "
                                         "rcpt=0/1 quit=1 commands=3/4")
        elif roll < 0.93:
            ip = f"192.0.2.{rng.randrange(1, 255)}"
            port = rng.randrange(1024, 65535)
            emit("postfix/postscreen", 800, f"CONNECT from [{ip}]:{port} to [10.0.0.1]:25")
            emit("postfix/postscreen", 800, f"PASS OLD [{ip}]:{port}")
        elif roll < 0.97:
            emit("postfix/anvil", 700, "statistics: max connection rate 3/60s for "
                                       "(smtp:192.0.2.7) at Nov 23 10:01:02")
        else:
            emit("postfix/smtpd", 11001, "warning: hostname h.example does not resolve to "
                                         "address 192.0.2.9: Name or service not known")
        if len(out) >= 10_000:
            written += _flush(path, out)
    return written + _flush(path, out), dict(counts)


def _flush(path: str, out: list[str]) -> int:
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(out)
    n = len(out)
    out.clear()
    return n


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from f


FLOOR_HEADER = re.compile(
    r"(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\s\[]+)\[(\d+)\]: (?:([0-9A-Za-z]+): )?(.*)")
FLOOR_STATUS = re.compile(r"status=(\w+)")


def run_floor(path: str) -> tuple[float, int, dict[str, int]]:
    counts: collections.Counter[str] = collections.Counter()
    match, search = FLOOR_HEADER.match, FLOOR_STATUS.search
    n = 0
    start = time.perf_counter()
    for line in _lines(path):
        n += 1
        m = match(line)
        if m is not None and m[5] and "status=" in line:
            s = search(line)
            if s is not None:
                counts[s[1]] += 1
    return time.perf_counter() - start, n, dict(counts)


def run_parse(path: str) -> tuple[float, int]:
    parse = LogParser(year=2026).parse
    n = 0
    start = time.perf_counter()
    for line in _lines(path):
        if parse(line) is not None:
            n += 1
    return time.perf_counter() - start, n


def run_poolwarden(path: str) -> tuple[float, int, dict[str, int], Correlator]:
    parse = LogParser(year=2026).parse
    correlator = Correlator()
    feed = correlator.feed
    counts: collections.Counter[str] = collections.Counter()
    n = 0
    start = time.perf_counter()
    for line in _lines(path):
        n += 1
        record = parse(line)
        if record is not None and record.queue_id is not None:
            for delivery in feed(record):
                counts[delivery.status] += 1
    return time.perf_counter() - start, n, dict(counts), correlator


def run_pflogsumm(path: str) -> float | None:
    if not os.path.exists(PFLOGSUMM):
        return None
    start = time.perf_counter()
    subprocess.run([PFLOGSUMM, path], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--file", help="use (or create) this log file instead of a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for each contender")
    args = ap.parse_args()

    tmpdir = None
    expected: dict[str, int] | None = None
    if args.file and os.path.exists(args.file):
        path = args.file
        print(f"using {path}")
    else:
        if args.file:
            path = args.file
        else:
            tmpdir = tempfile.mkdtemp(prefix="pw-logbench-")
            path = os.path.join(tmpdir, "mail.log")
        start = time.perf_counter()
        written, expected = generate(path, args.lines, args.seed)
        print(f"generated {written:,} lines ({os.path.getsize(path) / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s: {path}")
    try:
        floor = run_floor(path)
        n, floor_counts = floor[1], floor[2]
        ours = run_poolwarden(path)
        ours_counts, correlator = ours[2], ours[3]
        floor_s = min(floor[0], _best(args.repeat - 1, lambda: run_floor(path)[0])) \
            if args.repeat > 1 else floor[0]
        parse_s = _best(args.repeat, lambda: run_parse(path)[0])
        ours_s = min(ours[0], _best(args.repeat - 1, lambda: run_poolwarden(path)[0])) \
            if args.repeat > 1 else ours[0]
        pfl_s = _best(args.repeat, lambda: run_pflogsumm(path) or 0.0) \
            if os.path.exists(PFLOGSUMM) else None
    finally:
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir)

    def rate(seconds: float) -> str:
        return f"{n / seconds:>12,.0f} lines/s  ({seconds:6.2f} s)"

    print(f"best of {args.repeat}, {n:,} lines, Python {sys.version.split()[0]}")
    print(f"  floor (bare regex pass)     {rate(floor_s)}")
    print(f"  poolwarden parse only       {rate(parse_s)}")
    print(f"  poolwarden parse+correlate  {rate(ours_s)}")
    if pfl_s is not None:
        print(f"  pflogsumm                   {rate(pfl_s)}")
    print(f"deliveries: {dict(sorted(ours_counts.items()))}")
    print(f"  floor's status= line counts: {dict(sorted(floor_counts.items()))}")
    if expected is not None:
        print(f"  generator's ground truth:    {dict(sorted(expected.items()))}")
    print(f"  correlator at end: open {correlator.pending}, evicted {correlator.evicted}, "
          f"superseded {correlator.superseded}")
    print(f"parse+correlate runs at {floor_s / ours_s:.2f}x the floor's speed")
    if pfl_s is not None:
        ratio = pfl_s / ours_s
        print(f"parse+correlate is {ratio:.2f}x pflogsumm (issue target, for the full ingest "
              f"with storage: >= 3x)")
    else:
        print("pflogsumm not installed: no ratio", file=sys.stderr)
    agree = all(ours_counts.get(k, 0) == floor_counts.get(k, 0)
                for k in ("sent", "deferred", "bounced"))
    if expected is not None:
        agree = agree and ours_counts == expected
    print(f"delivery counts agree (floor lines; ground truth, expired per recipient): {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
