"""S7 (RELIABILITY.md) through a real Postfix: connection exhaustion cannot stop routing.

The agent listens on TCP (the flood comes from 127.0.0.1, the same address as Postfix's
own policy connections: the hardest case, no per-peer cap can tell them apart) or on its
unix socket (the flood runs as root, Postfix's smtpd as user postfix). A local process
(``flood.py``) opens and holds 2,000 idle connections (twice ``max_connections``) plus 50
slow-loris ones while 120 messages for the example tenants go through Postfix.

Must hold: every message is accepted with no 451 (only the 4.7.1 split), delivered once
from its route's IP; the Postfix log shows no 451 and no policy-service fallback; the
agent held at most ``max_connections_per_peer`` from one peer; idle connections were
closed after ``idle_timeout`` (above Postfix's ``smtpd_policy_service_max_idle``) and the
slow-loris ones after ``request_timeout``; the shedding was logged once (not once per
connection) and raised the ``policy_connections`` alert.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import EXAMPLE
from tests.support.postfix_lab import PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

pytestmark = pytest.mark.postfix

FLOOD = str(Path(__file__).with_name("flood.py"))
IDLE, LORIS, HOLD = 2000, 50, 30.0
IDLE_TIMEOUT, POSTFIX_MAX_IDLE, REQUEST_TIMEOUT = 8, "5s", 4
PER_PEER = 250
MESSAGES = 120


@pytest.fixture(params=["tcp", "unix"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    config = tmp_path / "poolwarden.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8") + f"""
[policyd]
idle_timeout = {IDLE_TIMEOUT}
request_timeout = {REQUEST_TIMEOUT}
max_connections = 1000
max_connections_per_peer = {PER_PEER}

[alerts]
poll_interval = 1
""", encoding="utf-8")
    extra = f"smtpd_policy_service_max_idle = {POSTFIX_MAX_IDLE}\n"
    with running_lab(config, policy=request.param, extra_main_cf=extra) as running:
        yield running


def test_s7_flood_of_idle_connections_does_not_stop_routing(lab: PostfixLab) -> None:
    out = lab.dir / "flood.json"
    target = (["--tcp", "127.0.0.1:10040"] if lab.policy_kind == "tcp"
              else ["--unix", lab.policy_listen[len("unix:"):]])
    flood = subprocess.Popen(lab.ns_command(sys.executable, FLOOD, *target, "--idle", str(IDLE),
                                            "--loris", str(LORIS), "--hold", str(HOLD),
                                            "--out", str(out)),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert flood.stdout is not None
        line = flood.stdout.readline().decode()
        assert line.strip() == "ready", line + flood.stdout.read().decode()
        flooded_at = time.time()
        jobs = lab.tenant_traffic(MESSAGES, tag="s7")
        results = lab.send_many(jobs, concurrency=8, timeout=120)  # no retries: a 451 fails
        sent_in = time.time() - flooded_at
        assert flood.wait(HOLD + 30) == 0
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
        if flood.stdout is not None:
            flood.stdout.close()
    assert sent_in < HOLD, f"the traffic took {sent_in:.1f} s, longer than the flood"

    deferred = [(r.message_id, reply.code, reply.text) for r in results for reply in r.replies
                if reply.code >= 400 and reply.enhanced != "4.7.1"]
    assert deferred == [], deferred[:5]
    problems = lab.check_routed_once(jobs, results)
    assert problems == [], "\n".join(problems[:20])
    log = lab.log_text()
    assert "451 4.3.5" not in log
    assert not re.search(r"policy service unavailable|poolwarden unavailable", log, re.I)

    flood_result = json.loads(out.read_text())
    closed = flood_result["closed"]
    assert flood_result["open_at_end"] == 0, flood_result["open_at_end"]  # all closed by us
    assert len(closed["loris"]) == LORIS
    assert all(t <= REQUEST_TIMEOUT + 3 for t in closed["loris"])
    # at most PER_PEER were ever held from the flooding peer: the rest were shed at once,
    # the survivors closed by the idle timeout, no earlier than it
    late = [t for t in closed["idle"] if t >= IDLE_TIMEOUT - 0.5]
    assert len(late) <= PER_PEER
    assert len(closed["idle"]) == IDLE

    agent_log = lab.agent_log_text()
    assert len(re.findall(r"shedding policy connections", agent_log)) == 1
    assert re.search(r"closed \d+ policy connections idle for more than", agent_log)
    lab.wait_until(lambda: _alerted(lab), 15, "the policy_connections alert")


def _alerted(lab: PostfixLab) -> bool:
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.config.load import load_config

    store = open_store(load_config(lab.config).store_url)
    try:
        return any(row.kind == "policy_connections" for row in store.alerts(since=0))
    finally:
        store.close()
