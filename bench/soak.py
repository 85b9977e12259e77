"""Soak of ``poolwarden serve`` (plan L3, on demand, not in CI): does it drift over time?

One ``poolwarden serve`` subprocess (the 2,000-tenant synthetic configuration of
``bench_ingest_synthetic``, SQLite store) gets, for ``--minutes``:

* L1-shaped load: ``--connections`` persistent connections (Postfix's default_process_limit
  is 100), each sending one RCPT request at a time as smtpd does;
* a snapshot swap every ``--swap-every`` seconds (SIGHUP: serve reloads and rebuilds its
  snapshot);
* a followed Postfix log growing at ``--log-rate`` lines/s (``bench_logparse``'s generator),
  rotated every ``--rotate-every`` seconds, alternating rename + new file and copytruncate.

Every ``--interval`` seconds it prints req/s, p50/p99 latency (measured by the client), and
serve's RSS, open fds and threads (from /proc). At the end: RSS growth and p99 drift of the
last interval against the first one after warm-up (the plan asks RSS growth < 10 % and p99
drift < 20 %), and whether fd and thread counts stayed flat. The plan's DMARC bursts are not
part of this soak. Exits 1 when a limit is exceeded or a reply was wrong.

Usage: python bench/soak.py [--minutes 30] [--connections 100] [--interval 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest_synthetic import config_text
from bench_logparse import generate
from bench_serve_ingest import free_port, pct, request, start_serve

RSS_GROWTH_LIMIT = 0.10
P99_DRIFT_LIMIT = 0.20


@dataclass(slots=True)
class Interval:
    """One reporting interval's figures."""

    minute: float
    rps: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    fds: int
    threads: int


@dataclass(slots=True)
class Load:
    """Latencies collected since the last report, shared with the reporter."""

    latencies: list[float] = field(default_factory=list)
    bad: int = 0

    def take(self) -> list[float]:
        taken, self.latencies = self.latencies, []
        return taken


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(RSS in MB, open fds, threads) of ``pid``."""
    rss_kb, threads = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def grow_and_rotate(source: Path, live: Path, rate: int, rotate_every: float,
                    stop: threading.Event) -> None:
    """Append ``source``'s lines to ``live`` at ``rate`` lines/s (cycling), rotating it."""
    lines = source.read_text().splitlines(keepends=True)
    step, at, rotations = max(1, rate // 20), 0, 0
    next_rotation = time.monotonic() + rotate_every
    while not stop.is_set():
        with live.open("a") as out:
            out.write("".join(lines[at:at + step]))
        at = (at + step) % len(lines)
        if time.monotonic() >= next_rotation:
            rotations += 1
            next_rotation += rotate_every
            rotated = live.with_name(f"{live.name}.{rotations}")
            if rotations % 2:  # logrotate's default: rename, then a new file
                live.rename(rotated)
                live.touch()
            else:  # copytruncate: the same inode shrinks to nothing
                shutil.copyfile(live, rotated)
                with live.open("r+") as f:
                    f.truncate(0)
        stop.wait(0.05)


async def drive(port: int, connections: int, until: float, load: Load) -> None:
    counter = iter(range(10**12))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < until:
                started = time.perf_counter()
                writer.write(request(next(counter)))
                reply = await reader.readuntil(b"\n\n")
                load.latencies.append(time.perf_counter() - started)
                if not reply.startswith(b"action="):
                    load.bad += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))


async def soak(args: argparse.Namespace, process: subprocess.Popen[bytes], port: int
               ) -> list[Interval]:
    load = Load()
    started = time.monotonic()
    until = started + args.minutes * 60
    reports: list[Interval] = []

    async def reporter() -> None:
        next_swap = started + args.swap_every
        next_report = started + args.interval
        last = started
        while time.monotonic() < until:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if now >= next_swap:
                process.send_signal(signal.SIGHUP)  # reload: a new snapshot
                next_swap += args.swap_every
            if now >= next_report:
                taken = load.take()
                rss, fds, threads = proc_figures(process.pid)
                row = Interval((now - started) / 60, len(taken) / (now - last),
                               pct(taken, 0.5), pct(taken, 0.99), rss, fds, threads)
                reports.append(row)
                last, next_report = now, next_report + args.interval
                print(f"  {row.minute:5.1f} min  {row.rps:7.0f} req/s  p50 {row.p50_ms:6.2f} ms"
                      f"  p99 {row.p99_ms:6.2f} ms  RSS {row.rss_mb:6.1f} MB  fds {row.fds:4d}"
                      f"  threads {row.threads:3d}", flush=True)

    # the load outlasts the last report, so that report sees every connection still open
    await asyncio.gather(drive(port, args.connections, until + 2.0, load), reporter())
    if load.bad:
        raise SystemExit(f"{load.bad} replies were not action= lines")
    return reports


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--interval", type=float, default=60, help="seconds between reports")
    ap.add_argument("--swap-every", type=float, default=30)
    ap.add_argument("--rotate-every", type=float, default=300)
    ap.add_argument("--log-rate", type=int, default=500, help="log lines per second")
    ap.add_argument("--warmup", type=int, default=1,
                    help="reports to skip before the baseline")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-soak-") as tmp:
        work = Path(tmp)
        source = work / "source.log"
        generate(str(source), 200_000, seed=11)
        live = work / "mail.log"
        live.touch()
        config = work / "poolwarden.toml"
        config.write_text(config_text(f"sqlite:///{work / 'soak.db'}"))
        port = free_port()
        process = start_serve(config, port, live, work / "serve.log")
        stop = threading.Event()
        writer = threading.Thread(target=grow_and_rotate,
                                  args=(source, live, args.log_rate, args.rotate_every, stop))
        writer.start()
        print(f"soak: {args.minutes:g} min, {args.connections} connections, swap every "
              f"{args.swap_every:g} s, rotation every {args.rotate_every:g} s, "
              f"{args.log_rate} log lines/s; {os.cpu_count()} CPUs shared", flush=True)
        try:
            reports = asyncio.run(soak(args, process, port))
        finally:
            stop.set()
            writer.join()
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    if len(reports) <= args.warmup:
        print("too short for a drift figure: run more intervals than --warmup")
        return 1
    base, last = reports[args.warmup], reports[-1]
    rss_growth = last.rss_mb / base.rss_mb - 1
    p99_drift = last.p99_ms / base.p99_ms - 1
    fds = sorted({r.fds for r in reports[args.warmup:]})
    threads = sorted({r.threads for r in reports[args.warmup:]})
    print(f"RSS growth {rss_growth:+.1%} (limit {RSS_GROWTH_LIMIT:.0%}); p99 drift "
          f"{p99_drift:+.1%} (limit {P99_DRIFT_LIMIT:.0%}); fds seen {fds}; threads seen "
          f"{threads}")
    ok = (rss_growth < RSS_GROWTH_LIMIT and p99_drift < P99_DRIFT_LIMIT
          and max(fds) - min(fds) <= 2 and max(threads) - min(threads) <= 2)
    print("met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
