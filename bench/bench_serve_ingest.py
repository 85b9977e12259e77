"""Benchmark: does log ingestion inside ``poolwarden serve`` slow the routing replies?

In one run, the same ``poolwarden serve`` (a subprocess, 2,000 tenants, SQLite store) gets
the same policy load twice:

* ``idle``: routing only (the floor);
* ``live``: the same while the process follows (``--follow``) a log that grows by
  ``--rate`` lines per second during the round (a busy MTA: 2,000 lines/s is about
  300 messages/s), the steady state;
* ``catching-up``: the same while it follows a freshly generated Postfix log of
  ``--lines`` lines (``bench_logparse.generate``), catching up for the whole round
  (paced: ``services.ingest.jobs.Pacer``).

The load generator is this process: ``--connections`` persistent connections, each
sending one RCPT request at a time and waiting for the reply, as smtpd does. Prints
req/s, p50 and p99 latency of each round and their ratios to ``idle``, and how many
lines the ingester read during the round (catching up, it must not have finished, or the
round did not measure what it claims). Usage:
python bench/bench_serve_ingest.py [--lines N] [--rate N] [--seconds S] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest_synthetic import TENANTS, config_text
from bench_logparse import generate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_serve(config: Path, port: int, follow: Path | None, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", "from poolwarden.main import app; app()", "serve",
            "--config", str(config), "--policy", f"tcp:127.0.0.1:{port}"]
    if follow is not None:
        argv += ["--follow", str(follow)]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process
        if process.poll() is not None:
            raise SystemExit(f"serve exited: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("serve did not listen")


def request(n: int) -> bytes:
    tenant = n % TENANTS
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address=127.0.0.1\nsasl_username=t{tenant}\n"
            f"sender=m{n}@t{tenant}.example\nrecipient=u{n}@gmail.com\n"
            f"instance=b{n:x}\n\n").encode()


async def load(port: int, connections: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                writer.write(request(next(counter)))
                reply = await reader.readuntil(b"\n\n")
                latencies.append(time.perf_counter() - started)
                if not reply.startswith(b"action="):
                    raise SystemExit(f"bad reply {reply!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return len(latencies), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def grow(source: Path, target: Path, rate: int, stop: threading.Event) -> None:
    """Append ``source``'s lines to ``target`` at ``rate`` lines per second."""
    lines = source.read_text().splitlines(keepends=True)
    step, at = max(1, rate // 20), 0
    with target.open("a") as out:
        while not stop.is_set() and at < len(lines):
            out.write("".join(lines[at:at + step]))
            out.flush()
            at += step
            stop.wait(0.05)


def run_round(name: str, config: Path, follow: Path | None, args: argparse.Namespace,
              work: Path, grow_from: Path | None = None) -> dict[str, float]:
    port = free_port()
    log = work / f"serve-{name}.log"
    process = start_serve(config, port, follow, log)
    stop = threading.Event()
    writer = None
    if grow_from is not None and follow is not None:
        writer = threading.Thread(target=grow, args=(grow_from, follow, args.rate, stop))
        writer.start()
    try:
        started = time.perf_counter()
        count, latencies = asyncio.run(load(port, args.connections, args.seconds))
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        if writer is not None:
            writer.join()
        process.send_signal(signal.SIGTERM)
        process.wait(120)
    result = {"rps": count / elapsed, "p50": pct(latencies, 0.50), "p99": pct(latencies, 0.99)}
    stopped = re.search(r"'lines_read': (\d+)", log.read_text())
    result["lines"] = float(stopped.group(1)) if stopped else 0.0
    print(f"{name:12s} {result['rps']:7.0f} req/s   p50 {result['p50']:6.2f} ms   "
          f"p99 {result['p99']:6.2f} ms   log lines read during the round: "
          f"{int(result['lines']):,}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_500_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-bench-serve-") as tmp:
        work = Path(tmp)
        maillog = work / "mail.log"
        written, _ = generate(str(maillog), args.lines, seed=7)
        print(f"log: {written:,} lines, {maillog.stat().st_size / 1e6:.0f} MB; "
              f"{args.connections} connections, {args.seconds:.0f} s per round; "
              f"{os.cpu_count()} CPUs shared with the load generator")
        rounds = {}
        live = work / "live.log"
        live.touch()
        for name, follow, source in (("idle", None, None), ("live", live, maillog),
                                     ("catching-up", maillog, None)):
            config = work / f"{name}.toml"
            config.write_text(config_text(f"sqlite:///{work / (name + '.db')}"))
            rounds[name] = run_round(name, config, follow, args, work, source)
        idle = rounds["idle"]
        for name in ("live", "catching-up"):
            r = rounds[name]
            print(f"ratios {name}/idle: req/s {r['rps'] / idle['rps']:.2f}, "
                  f"p50 {r['p50'] / idle['p50']:.2f}, p99 {r['p99'] / idle['p99']:.2f}")
        busy = rounds["catching-up"]
        if not 0 < busy["lines"] < written:
            print("warning: the ingester was not catching up during the whole round "
                  f"({int(busy['lines']):,} of {written:,} lines): use more --lines")


if __name__ == "__main__":
    main()
