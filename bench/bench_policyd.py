"""Benchmark: the policy server under Postfix-like load, next to postfwd and a do-nothing server.

In one run, three servers get the same load, each in its own process on a
loopback TCP port:

* poolwarden: ``PolicyServer`` + ``PolicyAgent`` over a snapshot of 100,000
  tenants and 500 IPs (the inventory of ``bench_decide.build_inventory``);
* postfwd (Debian package, ``postfwd1``: one multiplexing process) with a
  trivial rule set that answers DUNNO;
* minimal: the same ``PolicyServer`` (protocol, parser, encoder) with an
  answerer that says DUNNO: no decision logic.

The load generator is this process: one asyncio loop driving 16, then 64
persistent connections, each sending one realistic RCPT request at a time and
waiting for the reply, as Postfix's smtpd does. For each server and
connection count it prints req/s, p50/p99 latency, and the server's CPU per
request (utime+stime from /proc, over the process tree for postfwd), then the
ratios against the targets. Client and servers share the machine's cores.

Usage: python bench/bench_policyd.py [--seconds 5] [--connections 16,64] [--profile]
(``--profile`` adds a cProfile run of the poolwarden server and prints its hot spots.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import gc
import json
import os
import pstats
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
POSTFWD = Path("/usr/sbin/postfwd")
POSTFWD1 = Path("/usr/sbin/postfwd1")
WARMUP = 0.5  # seconds of load before the measured window
DRAIN_TIMEOUT = 5.0
TEMPLATES = 20_000  # distinct messages each connection cycles through
CLK_TCK = os.sysconf("SC_CLK_TCK")
RECIPIENT_DOMAINS = (["gmail.com"] * 45 + ["outlook.com"] * 20 + ["yahoo.com"] * 15
                     + [f"company{i}.example" for i in range(20)])
POOLWARDEN_OK = (b"action=FILTER pw-", b"action=HOLD", b"action=451",
                 b"action=DEFER_IF_PERMIT")
DUNNO_OK = (b"action=DUNNO", b"action=dunno")
POSTFWD_RULES = "id=R1; recipient_domain=gmail.com; action=DUNNO\nid=DEFAULT; action=DUNNO\n"


# -- servers (child side) ------------------------------------------------------------


def bench_snapshot(tenants: int, ips: int) -> Any:
    """The 100,000-tenant snapshot of bench_decide, built the same way."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    import bench_decide
    from poolwarden.core.model import Plan
    from poolwarden.core.snapshot import RoutingSettings, build_snapshot

    inventory, tiers = bench_decide.build_inventory(tenants, ips)
    advised = {t.name: bool(i % 2) for i, t in enumerate(inventory.tenants)
               if t.plan is Plan.AUTO}
    return build_snapshot(inventory, tiers=tiers, dedicated_advised=advised,
                          settings=RoutingSettings(), version=1, built_at=time.time())


class DunnoAnswerer:
    """policyd without the agent: the same server and parser, every answer DUNNO."""

    def answer(self, request: Any, connection: int = 0) -> str:
        return "DUNNO"

    def forget_connection(self, connection: int) -> None:
        pass


class GcPauses:
    """Counts and times the collector's pauses, per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self.started)

    def summary(self) -> dict[str, str]:
        return {f"gen{g}": f"{len(p)} pauses, total {sum(p) * 1e3:.1f} ms, "
                           f"max {max(p, default=0.0) * 1e3:.1f} ms"
                for g, p in self.pauses.items()}


async def _serve(kind: str, tenants: int, ips: int, profile: str | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def stdin_ready() -> None:
        if not os.read(sys.stdin.fileno(), 4096):  # parent closed our stdin: stop
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_ready)
    stats: dict[str, Any] = {}
    profiler = None
    if kind == "poolwarden":
        from poolwarden.adapters.listeners import Listen
        from poolwarden.services.routing.policy_agent import PolicyAgent
        from poolwarden.services.routing.policyd import PolicyServer

        started = time.perf_counter()
        snapshot = bench_snapshot(tenants, ips)
        stats["snapshot_build_s"] = round(time.perf_counter() - started, 2)
        gc.freeze()  # as Runtime.rebuild does after every snapshot swap
        agent = PolicyAgent(lambda: snapshot)
        server = PolicyServer(agent, socket_group=None)
        await server.start([Listen.parse("tcp:127.0.0.1:0")])
        address = server.addresses[0]

        async def flusher() -> None:  # what Runtime.flush does every second, minus the DB
            while True:
                await asyncio.sleep(1.0)
                while agent.decision_log:
                    agent.decision_log.popleft()
                while agent.bound:
                    agent.bound.popleft()

        flush_task = asyncio.create_task(flusher())
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        pauses = GcPauses()
        gc.callbacks.append(pauses)
        print(f"READY {address}", flush=True)
        await stop.wait()
        gc.callbacks.remove(pauses)
        stats["gc"] = pauses.summary()
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        flush_task.cancel()
        await server.stop(grace=1.0)
        stats["by_action"] = agent.stats.by_action
        stats["errors"] = agent.stats.errors
        stats["bad_requests"] = agent.stats.bad_requests
    else:
        from poolwarden.adapters.listeners import Listen
        from poolwarden.services.routing.policyd import PolicyServer

        minimal = PolicyServer(DunnoAnswerer(), socket_group=None)
        await minimal.start([Listen.parse("tcp:127.0.0.1:0")])
        print(f"READY {minimal.addresses[0]}", flush=True)
        await stop.wait()
        await minimal.stop(grace=1.0)
    print("STATS " + json.dumps(stats), flush=True)


# -- servers (parent side) -----------------------------------------------------------


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class ServerProcess:
    name = ""
    mode = ""
    host = "127.0.0.1"
    port = 0
    pid = 0
    valid: tuple[bytes, ...] = DUNNO_OK
    tree = False
    stats: dict[str, Any]

    def cpu_seconds(self) -> float:
        pids = process_tree(self.pid) if self.tree else [self.pid]
        return sum(proc_cpu_ticks(p) for p in pids) / CLK_TCK

    def stop(self) -> None:
        raise NotImplementedError


class PythonServer(ServerProcess):
    def __init__(self, kind: str, args: argparse.Namespace, profile: str | None = None) -> None:
        self.name = kind
        self.stats = {}
        self.valid = POOLWARDEN_OK if kind == "poolwarden" else DUNNO_OK
        self.mode = ("PolicyServer + PolicyAgent, asyncio, 1 process" if kind == "poolwarden"
                     else "PolicyServer + DUNNO answerer, asyncio, 1 process")
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind,
                   "--tenants", str(args.tenants), "--ips", str(args.ips)]
        if profile:
            command += ["--profile-out", profile]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY tcp:"):
            self.proc.kill()
            raise SystemExit(f"{kind} server did not start (got {line!r})")
        host, _, port = line.split(" ", 1)[1].strip()[len("tcp:"):].rpartition(":")
        self.host, self.port, self.pid = host, int(port), self.proc.pid

    def stop(self) -> None:
        stdin: IO[str] | None = self.proc.stdin
        if stdin is not None:
            stdin.close()
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("STATS "):
                self.stats = json.loads(line[len("STATS "):])
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def become_subreaper() -> None:
    """Orphans (postfwd's daemonized process) become our children, so we can reap them."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


class PostfwdServer(ServerProcess):
    def __init__(self, workdir: Path, cache: int | None) -> None:
        self.name = "postfwd"
        self.stats = {}
        self.tree = True
        self.valid = DUNNO_OK
        self.port = free_port()
        rules = workdir / "postfwd.cf"
        rules.write_text(POSTFWD_RULES)
        self.pidfile = workdir / "postfwd.pid"
        common = ["-f", str(rules), "--nodns", "--perfmon", "--norulestats",
                  "-u", "nobody", "-g", "nogroup", "--pidfile", str(self.pidfile)]
        if cache is not None:
            common.append(f"--cache={cache}")
        version = subprocess.run([str(POSTFWD1 if POSTFWD1.exists() else POSTFWD), "-V"],
                                 capture_output=True, text=True).stdout.split("\n")[0].strip()
        if POSTFWD1.exists():
            # postfwd1 has no foreground server mode: -d forks (Net::Server setsid); the pid
            # file names the server, which runs as nobody
            command = [str(POSTFWD1), "-d", "-i", self.host, "-p", str(self.port), *common]
            self.mode = f"postfwd1, single multiplexing process ({version})"
        else:
            command = [str(POSTFWD), "--nodaemon", "--server_socket",
                       f"tcp:{self.host}:{self.port}", "--cache_socket",
                       f"unix:{workdir / 'cache.sock'}", *common]
            self.mode = f"postfwd2 (preforking + cache daemon; postfwd1 missing) ({version})"
        self.mode += (", request cache " + ("600 s (default)" if cache is None
                                            else f"{cache} s" if cache else "off")
                      + ", --nodns --perfmon --norulestats")
        self.launcher = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.pidfile.exists() and self._answers():
                text = self.pidfile.read_text().strip()
                if text.isdigit():
                    self.pid = int(text)
                    return
            time.sleep(0.1)
        self._kill_launcher()
        raise SystemExit(f"postfwd did not answer on {self.host}:{self.port}: {command}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                sock.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                             b"recipient=probe@gmail.com\n\n")
                reply = b""
                while b"\n\n" not in reply:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    reply += chunk
                return reply.startswith(DUNNO_OK)
        except OSError:
            return False

    def _kill_launcher(self) -> None:
        if self.launcher.poll() is None:
            self.launcher.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.launcher.wait(timeout=5)

    def stop(self) -> None:
        if self.pid:
            pids = process_tree(self.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            for pid in pids:  # reap what reparented to us (we are a subreaper)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        done, _ = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if done:
                        break
                    time.sleep(0.05)
        self._kill_launcher()


# -- load generator -------------------------------------------------------------------


def make_messages(tenants: int, count: int, seed: int = 3) -> list[list[bytes]]:
    """Per message, each RCPT request without its ``instance`` line and end."""
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        n = rng.randrange(tenants)
        client = f"198.51.100.{rng.randrange(1, 255)}"
        size = rng.randrange(2_000, 200_000)
        common = (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                  f"client_address={client}\nclient_name=app{n % 7}.t{n}.example\n"
                  f"reverse_client_name=app{n % 7}.t{n}.example\nhelo_name=app{n % 7}.t{n}"
                  f".example\nsender=news@t{n}.example\nsasl_method=PLAIN\nsasl_username=t{n}\n"
                  f"size={size}\npolicy_context=rcpt\n")
        queue_id = f"{rng.getrandbits(40):010X}"
        recipients = []
        for index in range(rng.choice((1, 1, 1, 2, 3))):
            domain = rng.choice(RECIPIENT_DOMAINS)
            text = (common + f"recipient=user{rng.randrange(1_000_000)}@{domain}\n"
                    f"recipient_count={index}\n")
            if index:  # smtpd has a queue id only after the first accepted recipient
                text += f"queue_id={queue_id}\n"
            recipients.append(text.encode())
        messages.append(recipients)
    return messages


@dataclass
class LoadRun:
    messages: list[list[bytes]]
    valid: tuple[bytes, ...]
    measuring: bool = False
    sending: bool = True
    latencies: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[bytes] = field(default_factory=list)
    kinds: Counter[bytes] = field(default_factory=Counter)
    busy: int = 0

    def bad(self, why: str, reply: bytes = b"") -> None:
        self.errors[why] += 1
        if reply and len(self.error_samples) < 3:
            self.error_samples.append(reply[:120])


class LoadConnection(asyncio.Protocol):
    """One smtpd: a request, wait for the reply, the next request."""

    def __init__(self, run: LoadRun, cid: int, start: int) -> None:
        self.run = run
        self.cid = cid
        self.index = start
        self.recipient = 0
        self.sequence = 0
        self.buffer = b""
        self.sent_at = 0
        self.waiting = False
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_next(self) -> None:
        messages = self.run.messages
        message = messages[self.index]
        payload = message[self.recipient] + b"instance=%x.%x.0\n\n" % (self.cid, self.sequence)
        self.recipient += 1
        if self.recipient == len(message):
            self.recipient = 0
            self.sequence += 1
            self.index = (self.index + 1) % len(messages)
        self.waiting = True
        self.run.busy += 1
        self.sent_at = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\n\n")
        if end == -1:
            self.buffer = buffer
            return
        now = time.perf_counter_ns()
        run = self.run
        reply = buffer[:end]
        self.buffer = buffer[end + 2:]
        if not self.waiting or self.buffer:
            run.bad("reply without a request", reply)
        self.waiting = False
        run.busy -= 1
        if run.measuring:
            run.latencies.append(now - self.sent_at)
            run.kinds[reply[7:].split(b" ", 1)[0]] += 1
        if not reply.startswith(run.valid):
            run.bad("unexpected reply", reply)
        if run.sending:
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:
            self.waiting = False
            self.run.busy -= 1
            self.run.bad("connection closed before the reply")
        elif self.run.sending:
            self.run.bad("connection closed by the server")


@dataclass
class Result:
    server: str
    connections: int
    requests: int
    seconds: float
    server_cpu: float
    client_cpu: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: Counter[str]
    error_samples: list[bytes]
    kinds: Counter[bytes]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1e6


async def load(server: ServerProcess, connections: int, seconds: float,
               messages: list[list[bytes]]) -> Result:
    loop = asyncio.get_running_loop()
    run = LoadRun(messages, server.valid)
    protocols: list[LoadConnection] = []
    for cid in range(connections):
        start = cid * len(messages) // connections
        _, protocol = await loop.create_connection(
            functools.partial(LoadConnection, run, cid, start), server.host, server.port)
        protocols.append(protocol)
    for protocol in protocols:
        protocol.send_next()
    await asyncio.sleep(WARMUP)
    cpu_before, client_before = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run.measuring = True
    await asyncio.sleep(seconds)
    run.measuring = False
    run.sending = False
    elapsed = time.perf_counter() - started
    cpu_after, client_after = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while run.busy > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if run.busy > 0:
        run.errors["no reply within 5 s"] += run.busy
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    await asyncio.sleep(0.05)
    latencies = sorted(run.latencies)
    client_cpu = ((client_after.ru_utime + client_after.ru_stime)
                  - (client_before.ru_utime + client_before.ru_stime))
    return Result(server.name, connections, len(latencies), elapsed, cpu_after - cpu_before,
                  client_cpu, percentile(latencies, 0.50), percentile(latencies, 0.99),
                  latencies[-1] / 1e6 if latencies else float("nan"), run.errors,
                  run.error_samples, run.kinds)


# -- report ---------------------------------------------------------------------------


def print_result(r: Result, round_no: str) -> None:
    errors = sum(r.errors.values())
    print(f"  {r.server:<10} {r.connections:>5} {r.rate:>10,.0f} {r.p50_ms:>8.3f} "
          f"{r.p99_ms:>8.3f} {r.max_ms:>8.2f} {r.cpu_us:>9.1f} "
          f"{r.server_cpu / r.seconds * 100:>6.0f}% {r.client_cpu / r.seconds * 100:>6.0f}% "
          f"{errors:>6}  {round_no}", flush=True)
    for why, count in r.errors.items():
        print(f"      error: {why}: {count}")
    for sample in r.error_samples:
        print(f"      e.g. {sample!r}")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_profile(path: str, top: int) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime")
    print(f"\n-- cProfile of the poolwarden server process, top {top} by own time --")
    stats.print_stats(top)
    stats.sort_stats("cumulative")
    print(f"-- same, top {top} by cumulative time --")
    stats.print_stats(top)


async def main_async(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.connections.split(",")]
    started = time.perf_counter()
    messages = make_messages(args.tenants, TEMPLATES)
    print(f"poolwarden policyd benchmark: {args.tenants:,} tenants, {args.ips} IPs; "
          f"{args.seconds:g} s per run after {WARMUP:g} s warm-up; connections {counts}; "
          f"{args.rounds} interleaved round(s), best kept")
    print(f"NOTE: the load generator (this process, one asyncio loop) and the server under test "
          f"share the same {os.cpu_count()} cores (and whatever else runs on the machine): "
          f"figures are a floor, not a capacity claim.")
    print("request: 15-16 attributes (RCPT, ESMTP, SASL tN, sender news@tN.example, recipients "
          "at gmail/outlook/yahoo/companyX.example, 1-3 per message, one at a time per "
          "connection)")
    results: dict[tuple[str, int], Result] = {}
    servers: dict[str, ServerProcess] = {}
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        try:
            servers["poolwarden"] = PythonServer("poolwarden", args)
            servers["postfwd"] = PostfwdServer(workdir, args.postfwd_cache)
            servers["minimal"] = PythonServer("minimal", args)
            print("\n  server     conns      req/s  p50 ms   p99 ms   max ms  cpu µs/req "
                  "srv cpu cli cpu errors  round")
            for connections in counts:
                for round_no in range(1, args.rounds + 1):
                    for name, server in servers.items():
                        result = await load(server, connections, args.seconds, messages)
                        print_result(result, f"{round_no}")
                        best = results.get((name, connections))
                        if best is None or result.rate > best.rate:
                            result.errors.update(best.errors if best else {})
                            results[(name, connections)] = result
                        else:
                            best.errors.update(result.errors)
        finally:
            for server in servers.values():
                server.stop()
        profile_path = str(workdir / "poolwarden.prof")
        if args.profile:
            profiled = PythonServer("poolwarden", args, profile=profile_path)
            try:
                profiled_result = await load(profiled, counts[0], args.seconds, messages)
            finally:
                profiled.stop()
        if args.rounds > 1:
            print(f"\nbest of {args.rounds} rounds (errors summed over all rounds):")
            print("  server     conns      req/s  p50 ms   p99 ms   max ms  cpu µs/req "
                  "srv cpu cli cpu errors")
            for connections in counts:
                for name in servers:
                    print_result(results[(name, connections)], "")
        print("\nservers:")
        for server in servers.values():
            print(f"  {server.name:<10} {server.mode}")
        pw_stats = servers["poolwarden"].stats
        print(f"poolwarden agent: snapshot build {pw_stats.get('snapshot_build_s')} s; "
              f"actions {pw_stats.get('by_action')}; agent errors {pw_stats.get('errors')}")
        print(f"poolwarden server GC while serving: {pw_stats.get('gc')}")
        for connections in counts:
            r = results[("poolwarden", connections)]
            shares = ", ".join(f"{k.decode()} {v / max(1, r.requests):.1%}"
                               for k, v in r.kinds.most_common())
            print(f"poolwarden replies at {connections} connections: {shares}")
        print("\nratios (targets in brackets):")
        for connections in counts:
            pw = results[("poolwarden", connections)]
            pf = results[("postfwd", connections)]
            mini = results[("minimal", connections)]
            print(f"  {connections:>3} conns: poolwarden ÷ postfwd req/s = "
                  f"{ratio(pw.rate, pf.rate):.2f}× [≥ 10×]; server CPU/req postfwd ÷ "
                  f"poolwarden = {ratio(pf.cpu_us, pw.cpu_us):.2f}×")
            print(f"  {connections:>3} conns: poolwarden ÷ minimal req/s = "
                  f"{ratio(pw.rate, mini.rate):.2f} [≥ 0.6]; server CPU/req minimal ÷ "
                  f"poolwarden = {ratio(mini.cpu_us, pw.cpu_us):.2f}")
        if 16 in counts:
            p99 = results[("poolwarden", 16)].p99_ms
            print(f"  poolwarden p99 at 16 connections = {p99:.3f} ms [≤ 1 ms]: "
                  f"{'met' if p99 <= 1.0 else 'NOT met'}")
        total_errors = sum(sum(r.errors.values()) for r in results.values())
        print(f"  errors (wrong, missing or extra replies) across all runs: {total_errors}")
        if args.profile:
            print(f"\nprofiled run (cProfile on, {counts[0]} connections): "
                  f"{profiled_result.rate:,.0f} req/s, {profiled_result.cpu_us:.1f} µs/req")
            print_profile(profile_path, args.profile_top)
    print(f"\n(total wall time {time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--connections", default="16,64", help="comma-separated counts")
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--ips", type=int, default=500)
    parser.add_argument("--profile", action="store_true",
                        help="add a cProfile run of the poolwarden server and print hot spots")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds per configuration; the best is kept")
    parser.add_argument("--postfwd-cache", type=int,
                        help="postfwd --cache seconds (default: postfwd's own, 600; 0 = off)")
    parser.add_argument("--serve", choices=["poolwarden", "minimal"], help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.tenants, args.ips, args.profile_out))
        return
    if not POSTFWD.exists():
        print(f"postfwd is not installed ({POSTFWD} missing): apt-get install postfwd",
              file=sys.stderr)
        sys.exit(1)
    become_subreaper()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
