"""A Postfix log written by a real Postfix, for the benchmarks: generated once, then cached.

Runs the test lab (``tests/support/postfix_lab.py``: a private Postfix in its own network
namespace with only ``lo``, a recording sink on 127.0.0.53:25 and ``poolwarden serve`` as its
policy server, one ``pw-127-0-0-N`` transport per egress IP) and drives it with Postfix's
own load generator, ``smtp-source``, run inside the namespace through ``nsenter`` like the
lab's helpers. Several ``smtp-source`` processes run at once, each one stream: a sender of
one of the lab configuration's tenants (``examples/poolwarden.toml``) to one recipient domain
(gmail.com, outlook.com, yahoo.com, ... and small domains), several recipients per message,
and a recipient kind the sink answers for:

* ``u@``: accepted (``status=sent``);
* ``tempfail@``: ``451 4.2.0`` at RCPT, so Postfix defers, retries (the queue is tuned to
  retry every 10-30 s) and, after two minutes, returns the message
  (``status=expired`` and a bounce notification to the tenant);
* ``reject@``: ``550 5.1.1``, so Postfix bounces and sends a non-delivery notification;
* a sender of no known tenant: the policy server defers it at RCPT (``NOQUEUE: reject``).

Around them the log gets what a real one has: ``connect``/``disconnect`` with command
counts, ``client=``, ``message-id=``, ``NOQUEUE: filter`` (the routing decisions), TLS
(``smtp_tls_security_level = may``: the sink offers STARTTLS with a self-signed certificate),
connection reuse, queue-manager lines and warnings (a congested active queue).

Nothing is made up: every line of the result was written by Postfix's ``maillog_file``. The
run stops once the log holds ``--lines`` lines (or after ``--max-seconds``: then it keeps what
Postfix wrote and says so), stops Postfix, and copies the log and the poolwarden
configuration the lab used (whose tenants the ingest must find) to
``/var/tmp/poolwarden-bench/<key>/``, the key being a hash of the parameters and
``GENERATOR_VERSION``; later runs with the same parameters reuse it. Needs root and Debian's
postfix (the lab's own requirements); exits 2 saying why when they are missing. Usage:
python bench/real_postfix_log.py [--lines N] [--seed N] [--max-seconds S] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support is not an installed package

from tests.support.postfix_lab import (  # noqa: E402
    SMTPD_HOST,
    SMTPD_PORT,
    LabError,
    PostfixLab,
    lab_unavailable,
)

# bump when the traffic or the Postfix settings change: the cached logs are then stale
GENERATOR_VERSION = 1
CACHE = Path("/var/tmp/poolwarden-bench")
SMTP_SOURCE = "/usr/sbin/smtp-source"
CONFIG = ROOT / "examples" / "poolwarden.toml"
LOG_NAME = "postfix.log"
CONFIG_NAME = "poolwarden.toml"
META_NAME = "meta.json"

# Retry soon, give up soon: deferred mail repeats its deferrals, warns its sender and
# expires within the run instead of days later. TLS on the client side (the sink offers it).
EXTRA_MAIN_CF = """
# --- bench/real_postfix_log.py ---
queue_run_delay = 5s
minimal_backoff_time = 10s
maximal_backoff_time = 30s
maximal_queue_lifetime = 2m
bounce_queue_lifetime = 2m
anvil_status_update_time = 60s
smtp_tls_security_level = may
smtp_tls_loglevel = 1
"""

# recipient domains: the major providers weigh most, as in an ESP's traffic
DOMAINS = (("gmail.com", 30), ("outlook.com", 12), ("hotmail.com", 8), ("yahoo.com", 14),
           ("icloud.com", 6), ("googlemail.com", 2), ("smallbiz.example", 10),
           ("example.org", 10), ("corp.example", 8))
# recipient kinds by the sink's answer: accepted, deferred (451), rejected (550)
KINDS = (("u", 86), ("tempfail", 7), ("reject", 7))
UNKNOWN_SENDER_SHARE = 0.02  # streams from a sender of no tenant (the policy defers them)


@dataclasses.dataclass(frozen=True, slots=True)
class Params:
    """What the log depends on (the cache key)."""

    lines: int = 1_000_000
    seed: int = 7
    parallel: int = 6  # smtp-source processes at once
    sessions: int = 2  # SMTP sessions of each (-s)
    messages: int = 40  # messages of each (-m)

    def key(self) -> str:
        text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


DEFAULTS = Params()


def cache_dir(params: Params) -> Path:
    return CACHE / f"postfix-{params.lines}-{params.key()}"


def cached(params: Params) -> Path | None:
    """The cache directory holding a finished log for ``params``, or None."""
    where = cache_dir(params)
    return where if (where / META_NAME).exists() else None


def _tenant_domains() -> list[str]:
    from poolwarden.config.load import load_config

    return [t.domains[0] for t in load_config(CONFIG).inventory.tenants if t.domains]


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def stream_argv(rng: random.Random, tenants: list[str], params: Params, serial: int
                ) -> list[str]:
    """One smtp-source command: one sender, one recipient domain and kind, -r recipients
    per message (digits before the local part keep them apart, which the sink ignores)."""
    if rng.random() < UNKNOWN_SENDER_SHARE:
        sender = f"news{serial}@stranger{serial % 5}.example"
    else:
        sender = f"{rng.choice(('news', 'info', 'billing', 'noreply'))}{serial}@" \
                 f"{rng.choice(tenants)}"
    rcpt = f"{_weighted(rng, KINDS)}@{_weighted(rng, DOMAINS)}"
    argv = [SMTP_SOURCE, "-A", "-N", "-s", str(params.sessions), "-m", str(params.messages),
            "-r", str(rng.choice((1, 1, 2, 3, 5))), "-l", str(rng.randrange(200, 6000)),
            "-M", "client.lab.test", "-S", f"lab bench {serial}", "-f", sender, "-t", rcpt]
    if rng.random() < 0.5:
        argv.append("-d")  # several messages per connection, as a submitting app does
    return [*argv, f"{SMTPD_HOST}:{SMTPD_PORT}"]


class LineCounter:
    """Counts the lines of a growing file by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0
        self.fatal = 0  # fatal:/panic: lines: a broken setup, not traffic


    def update(self) -> int:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            f.seek(self.offset)
            while block := f.read(1 << 20):
                self.lines += block.count(b"\n")
                self.fatal += block.count(b" fatal: ") + block.count(b" panic: ")
                self.offset += len(block)
        return self.lines


def generate(params: Params, *, max_seconds: float, out: Path) -> dict[str, object]:
    """Run the lab until its log holds ``params.lines`` lines (or ``max_seconds`` passed);
    write the log, the configuration and ``meta.json`` into ``out``."""
    tenants = _tenant_domains()
    rng = random.Random(params.seed)
    started = time.monotonic()
    lab = PostfixLab(CONFIG, extra_main_cf=EXTRA_MAIN_CF, sink_tls=True, log_level="WARNING")
    lab.start()
    running: list[subprocess.Popen[bytes]] = []
    serial = 0
    try:
        counter = LineCounter(lab.maillog)
        last_print = 0.0
        while counter.update() < params.lines:
            elapsed = time.monotonic() - started
            if elapsed > max_seconds:
                print(f"  stopping after {elapsed:.0f} s with {counter.lines:,} lines "
                      f"(--max-seconds)", flush=True)
                break
            running = [p for p in running if p.poll() is None]
            while len(running) < params.parallel:
                serial += 1
                running.append(subprocess.Popen(
                    lab.ns_command(*stream_argv(rng, tenants, params, serial)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL))
            if elapsed - last_print >= 15:
                last_print = elapsed
                rate = counter.lines / elapsed if elapsed else 0.0
                print(f"  {elapsed:5.0f} s  {counter.lines:>9,} lines  {rate:6,.0f} lines/s  "
                      f"{serial} smtp-source runs", flush=True)
            time.sleep(0.2)
        for process in running:  # let the started sessions finish: no cut SMTP dialogues
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60)
        lab.run_in_ns("/usr/sbin/postfix", "-c", str(lab.etc), "stop", check=False)
        time.sleep(1.0)  # the daemons' last lines
        seconds = time.monotonic() - started
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab.maillog, out / LOG_NAME)
        shutil.copyfile(lab.config, out / CONFIG_NAME)
        final = LineCounter(out / LOG_NAME)
        lines = final.update()
        version = lab.run_in_ns("/usr/sbin/postconf", "-d", "-h", "mail_version",
                                check=False).stdout.strip()
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
        lab.stop()
    meta: dict[str, object] = {
        "params": dataclasses.asdict(params), "generator_version": GENERATOR_VERSION,
        "lines": lines, "bytes": (out / LOG_NAME).stat().st_size,
        "seconds": round(seconds, 1), "lines_per_second": round(lines / seconds),
        "smtp_source_runs": serial, "postfix_version": version, "fatal_lines": final.fatal,
        "complete": lines >= params.lines, "created": time.time()}
    (out / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def ensure_log(params: Params, *, max_seconds: float = 900, force: bool = False
               ) -> tuple[Path, dict[str, object]]:
    """(cache directory, meta) of a real log for ``params``: the cached one, or a new one.
    Raises ``LabError`` when no lab can run here."""
    where = cache_dir(params)
    if not force and (done := cached(params)) is not None:
        return done, json.loads((done / META_NAME).read_text())
    reason = lab_unavailable()
    if reason is None and not os.path.exists(SMTP_SOURCE):
        reason = f"{SMTP_SOURCE} is missing (Debian package postfix)"
    if reason is not None:
        raise LabError(f"cannot generate a real Postfix log: {reason}")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f".tmp-{params.key()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating a real Postfix log of {params.lines:,} lines into {where} "
          "(takes minutes)", flush=True)
    try:
        meta = generate(params, max_seconds=max_seconds, out=tmp)
        shutil.rmtree(where, ignore_errors=True)
        tmp.rename(where)  # whole or not at all: a cut run leaves no half cache
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return where, meta


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--lines", type=int, default=DEFAULTS.lines)
    ap.add_argument("--seed", type=int, default=DEFAULTS.seed)
    ap.add_argument("--parallel", type=int, default=DEFAULTS.parallel,
                    help="smtp-source processes at once")
    ap.add_argument("--max-seconds", type=float, default=900,
                    help="stop generating after this long and keep what Postfix wrote")
    ap.add_argument("--force", action="store_true", help="generate again")
    args = ap.parse_args()
    params = Params(lines=args.lines, seed=args.seed, parallel=args.parallel)
    try:
        where, meta = ensure_log(params, max_seconds=args.max_seconds, force=args.force)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{where / LOG_NAME}: {meta['lines']:,} lines written by Postfix "
          f"{meta['postfix_version']} in {meta['seconds']} s "
          f"({meta['lines_per_second']:,} lines/s){'' if meta['complete'] else ' (CUT SHORT)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
