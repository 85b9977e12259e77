"""End-to-end throughput of the whole pipeline: what poolwarden costs a real Postfix.

Runs the test lab (``tests/support/postfix_lab.py``: a private Postfix in its own network
namespace with only ``lo``, the recording sink on 127.0.0.53:25, one ``pw-127-0-0-N``
transport per egress IP) with ``poolwarden serve`` as the policy server *and* following and
ingesting the Postfix log, and drives it with Postfix's own load generator ``smtp-source``
(inside the namespace through ``nsenter``, as ``bench/real_postfix_log.py`` does). The same
Postfix has two smtpd listeners:

* ``127.0.0.1:10025`` (policy on): every RCPT and END-OF-MESSAGE asks the agent, which
  answers ``FILTER pw-…:`` per tenant;
* ``127.0.0.1:10026`` (bare): no policy check; a fixed ``content_filter`` sends everything
  through one egress transport, so the delivery work is the same and only the policy
  delegation differs.

Each phase sends the same traffic shape (``--streams`` smtp-source processes at once, each
one tenant sender to one recipient domain, ``-r`` recipients per message, ``-N`` so every
recipient address is unique) and is timed from the first connection to the last recipient
recorded at the sink. Reported: messages/s of each phase, the ratio policy/bare (the cost of
poolwarden on the MTA; target >= 0.9), the agent's decision p99 during the policy phase (from
the ``/metrics`` latency histogram, scraped before and after), the log lines serve ingested,
and whether every recipient was delivered exactly once from an IP of the pool its tenant is
routed to (bare: from the fixed transport's IP). Exits 1 when delivery is wrong or the ratio
is under target, 2 when no lab can run here.

Usage: python bench/bench_pipeline.py [--messages N] [--streams N] [--rcpts N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support is not an installed package

from tests.support.postfix_lab import (  # noqa: E402
    SMTPD_HOST,
    SMTPD_PORT,
    LabError,
    PostfixLab,
    lab_unavailable,
)

SMTP_SOURCE = "/usr/sbin/smtp-source"
CONFIG = ROOT / "examples" / "poolwarden.toml"
BARE_PORT = 10026
BARE_IP = "127.0.0.11"  # the fixed egress of the bare listener (a shared-pool IP)
HTTP = "127.0.0.1:8025"
RATIO_TARGET = 0.9
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "smallbiz.example",
           "example.org")

# Mail must not wait for a queue run: the benchmark measures the hot path, not backoff.
EXTRA_MAIN_CF = """
# --- bench/bench_pipeline.py ---
default_process_limit = 200
smtp_connection_cache_on_demand = yes
"""


def _transport(ip: str) -> str:
    from poolwarden.adapters.postfix_conf import transport_name

    return transport_name(ip)


class PipelineLab(PostfixLab):
    """The lab whose serve follows the Postfix log, with a second, policy-free smtpd."""

    def agent_argv(self) -> list[str]:
        return [*super().agent_argv(), "--follow", str(self.maillog), "--http", HTTP]

    def master_cf_text(self) -> str:
        bare = (f"{SMTPD_HOST}:{BARE_PORT} inet n - n - - smtpd\n"
                "  -o smtpd_recipient_restrictions=permit_mynetworks,reject\n"
                "  -o smtpd_data_restrictions=\n"
                "  -o smtpd_end_of_data_restrictions=\n"
                f"  -o content_filter={_transport(BARE_IP)}:\n")
        return super().master_cf_text() + "\n" + bare


@dataclass(slots=True)
class Phase:
    """One timed run of smtp-source streams against one listener."""

    name: str
    port: int
    streams: list[tuple[str, str]]  # (sender, recipient domain) of each smtp-source
    messages: int  # per stream
    rcpts: int
    tag: str
    seconds: float = 0.0
    delivered: int = 0
    splits: int = 0  # recipients the agent split off (450 4.7.1)

    @property
    def total_messages(self) -> int:
        return len(self.streams) * self.messages

    @property
    def sent_messages(self) -> float:
        """Messages delivered (recipients at the sink / recipients per message)."""
        return self.delivered / self.rcpts

    @property
    def rate(self) -> float:
        return self.sent_messages / self.seconds if self.seconds else 0.0


def scrape(lab: PostfixLab) -> str:
    """serve's /metrics text, fetched inside the namespace."""
    code = (f"import urllib.request; print(urllib.request.urlopen('http://{HTTP}/metrics', "
            "timeout=10).read().decode())")
    return lab.run_in_ns(sys.executable, "-c", code, timeout=30).stdout


def histogram(text: str) -> dict[float, float]:
    """Cumulative bucket counts of the decision latency histogram."""
    out: dict[float, float] = {}
    pattern = r'^poolwarden_decision_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$'
    for le, count in re.findall(pattern, text, re.M):
        out[float(le)] = float(count)
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float
             ) -> tuple[float, int]:
    """(upper bucket bound holding quantile q, observations) of the requests between two
    scrapes."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0.0
    for bound, cumulative in zip(bounds, delta, strict=True):
        if total and cumulative >= q * total:
            return bound, int(total)
    return float("inf"), int(total)


def metric(text: str, name: str) -> float:
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    return sum(float(v) for v in found)


def run_phase(lab: PostfixLab, phase: Phase, timeout: float) -> list[str]:
    """Send the phase's traffic, wait for every recipient at the sink; return problems."""
    # a warming IP's daily cap can run out during the phase and move the tenant to its
    # overflow pool: the routes before and after are both right
    routes_before = lab.routes([(s, f"u@{d}") for s, d in phase.streams])
    started = time.time()
    procs = []
    for i, (sender, domain) in enumerate(phase.streams):
        argv = [SMTP_SOURCE, "-N", "-d", "-s", "1", "-m", str(phase.messages),
                "-r", str(phase.rcpts), "-l", "2000", "-M", "client.lab.test",
                "-f", sender, "-t", f"{phase.tag}{i}x@{domain}", f"{SMTPD_HOST}:{phase.port}"]
        procs.append(subprocess.Popen(lab.ns_command(*argv), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
    problems = []
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            problems.append(f"smtp-source exited {proc.returncode}: {err.decode()[-300:]}")
    want = phase.total_messages * phase.rcpts
    deadline = time.time() + timeout
    mine: list[dict[str, object]] = []
    stable = 0
    while time.time() < deadline:
        mine = [r for r in lab.sink_records()
                if any(phase.tag in str(t) for t in r["rcpt_tos"])]  # type: ignore[attr-defined]
        delivered = sum(len(r["rcpt_tos"]) for r in mine)  # type: ignore[arg-type]
        if delivered >= want:
            break
        # fewer when the agent split a message (a snapshot changed under it): smtp-source
        # cannot re-send a 450 4.7.1 recipient and ends its session. Done once the queue
        # is empty and nothing more arrives.
        stable = stable + 1 if delivered == phase.delivered and not lab.postqueue_json() else 0
        phase.delivered = delivered
        if stable >= 10:
            break
        time.sleep(0.2)
    last = max((float(r["t"]) for r in mine), default=time.time())  # type: ignore[arg-type]
    phase.seconds = last - started
    phase.delivered = sum(len(r["rcpt_tos"]) for r in mine)  # type: ignore[arg-type]
    phase.splits = sum(
        1 for line in lab.log_text().splitlines()
        if "reject: RCPT" in line and " 4.7.1 " in line and phase.tag in line)
    if phase.delivered < want:
        print(f"  {phase.name}: {phase.delivered} of {want} recipients at the sink; "
              f"{phase.splits} split off (450 4.7.1) ended their smtp-source session",
              flush=True)
        if not phase.splits:
            problems.append(f"{phase.name}: {phase.delivered} of {want} recipients at the "
                            "sink and no split explains it")
    return problems + check_delivery(lab, phase, mine, routes_before)


def check_delivery(lab: PostfixLab, phase: Phase, records: list[dict[str, object]],
                   routes_before: dict[tuple[str, str], Any]) -> list[str]:
    """Every recipient exactly once, from an IP its route allows (checked by the peer
    address the sink saw)."""
    from poolwarden.config.load import load_config

    inventory = load_config(lab.config).inventory
    pools = {p.name: set(p.ips) for p in inventory.pools}
    pools.update({f"dedicated:{t.name}": set(t.dedicated_ips) for t in inventory.tenants})
    # a stream's recipients differ only by smtp-source's numbers: route by (sender, domain)
    decisions = lab.routes([(s, f"u@{d}") for s, d in phase.streams])
    allowed = {}
    for i, (sender, domain) in enumerate(phase.streams):
        key = (sender, f"u@{domain}")
        ips = pools.get(decisions[key].pool or "", set()) | pools.get(
            routes_before[key].pool or "", set())
        allowed[f"{phase.tag}{i}x@{domain}"] = {BARE_IP} if phase.port == BARE_PORT else ips
    seen: Counter[str] = Counter()
    problems = []
    for record in records:
        for rcpt in record["rcpt_tos"]:  # type: ignore[attr-defined]
            seen[rcpt] += 1
            base = re.sub(r"^\d+", "", str(rcpt))  # smtp-source -N numbers each recipient
            if record["peer"] not in allowed.get(base, set()):
                problems.append(f"{phase.name}: {rcpt} from {record['peer']}, allowed "
                                f"{sorted(allowed.get(base, set()))}")
    twice = [r for r, n in seen.items() if n > 1]
    if twice:
        problems.append(f"{phase.name}: {len(twice)} recipients delivered more than once, "
                        f"e.g. {twice[:3]}")
    return problems[:20]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--messages", type=int, default=200, help="messages per stream")
    ap.add_argument("--streams", type=int, default=10, help="smtp-source processes at once")
    ap.add_argument("--rcpts", type=int, default=3, help="recipients per message")
    ap.add_argument("--rounds", type=int, default=2,
                    help="bare/policy pairs, alternated so drift hits both alike")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    reason = lab_unavailable()
    if reason is None and not os.path.exists(SMTP_SOURCE):
        reason = f"{SMTP_SOURCE} is missing (Debian package postfix)"
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    from poolwarden.config.load import load_config
    from poolwarden.core.model import IpState

    inventory = load_config(CONFIG).inventory
    warming = {ip.address for ip in inventory.ips if ip.state is IpState.WARMING}
    # a warming IP's daily cap runs out within a phase and the agent then splits the
    # message (450 4.7.1, recipe 3.4), which smtp-source cannot re-send: it drops the
    # session. Those tenants are the lab's e2e tests' business, not a throughput figure.
    tenants = [t.domains[0] for t in inventory.tenants
               if t.domains and not set(t.dedicated_ips) & warming]
    streams = [(f"news{i}@{tenants[i % len(tenants)]}", DOMAINS[i % len(DOMAINS)])
               for i in range(args.streams)]
    lab = PipelineLab(CONFIG, extra_main_cf=EXTRA_MAIN_CF, log_level="WARNING")
    lab.start()
    problems: list[str] = []
    phases: list[Phase] = []
    p99s: list[tuple[float, int]] = []
    try:
        for rnd in range(args.rounds):
            for name, port in (("bare", BARE_PORT), ("policy", SMTPD_PORT)):
                phase = Phase(name, port, streams, args.messages, args.rcpts,
                              tag=f"r{rnd}{name[0]}")
                before = histogram(scrape(lab))
                problems += run_phase(lab, phase, args.timeout)
                if name == "policy":
                    p99s.append(quantile(before, histogram(scrape(lab)), 0.99))
                phases.append(phase)
                print(f"  round {rnd} {name:6s}: {phase.sent_messages:,.0f} messages, "
                      f"{phase.delivered:,} recipients in {phase.seconds:6.1f} s = "
                      f"{phase.rate:7.1f} msg/s", flush=True)
        time.sleep(3)  # the follower's last batch
        final = scrape(lab)
        lab.assert_no_fatal()
        log = lab.log_text()
        fallbacks = log.count("problem talking to server") + log.count("Policy service")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        lab.stop()
    bare = sum(p.sent_messages for p in phases if p.name == "bare") / \
        sum(p.seconds for p in phases if p.name == "bare")
    policy = sum(p.sent_messages for p in phases if p.name == "policy") / \
        sum(p.seconds for p in phases if p.name == "policy")
    splits = sum(p.splits for p in phases)
    ratio = policy / bare
    worst_p99 = max(b for b, _ in p99s)
    decisions = sum(n for _, n in p99s)
    ingested = metric(final, "poolwarden_ingest_lines_read_total")
    stored = metric(final, "poolwarden_ingest_events_stored_total")
    figures = {"bare_msgs_per_s": round(bare, 1), "policy_msgs_per_s": round(policy, 1),
               "ratio": round(ratio, 3), "agent_p99_le_seconds": worst_p99,
               "decisions": decisions, "ingested_lines": ingested, "events_stored": stored,
               "policy_fallbacks_in_log": fallbacks, "splits": splits, "problems": len(problems)}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if fallbacks:
        problems.append(f"{fallbacks} policy fallbacks in the Postfix log")
    met = ratio >= RATIO_TARGET
    print(f"ratio {ratio:.3f} {'met' if met else 'NOT met'} (target >= {RATIO_TARGET})")
    return 0 if met and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
