"""R1 (docs/testing.md): kill -9 the routing agent under live traffic, restart it 3 s later.

Real Postfix with ``check_policy_service { unix:private/poolwarden, timeout=2s,
{ default_action = 451 4.3.5 … } }`` (the generated configuration), CI-sized: 400 messages
(480 recipients) for the 8 example tenants over 8 SMTP connections. The client retries 4xx
like an MTA's queue (after 0.5 s) and re-sends 4.7.1 split recipients at once.

Must hold: the sink receives every (Message-ID, recipient) exactly once, each from an IP of
the pool its tenant's route names (the exact IP for one-recipient messages); zero 5xx; every
4xx other than the 4.7.1 split falls inside the outage (kill … agent answering again).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postfix_lab import PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
MESSAGES = 400
RESTART_AFTER = 3.0
# after the agent answers again, a RCPT already in its 1 s retry_delay may still fail
GRACE = 1.5

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(EXAMPLE) as running:
        yield running


def test_r1_kill9_under_traffic_loses_nothing_and_misroutes_nothing(lab: PostfixLab) -> None:
    jobs = lab.tenant_traffic(MESSAGES, tag="r1")
    batch = lab.start_sending(jobs, concurrency=8, retry_for=60, retry_delay=0.5)
    lab.wait_until(lambda: len(batch.results()) >= MESSAGES // 4, 60,
                   "a quarter of the traffic", process=batch.process)
    first_pid = lab.agent.pid if lab.agent else None
    killed = lab.kill_agent()
    lab.wait_until(lambda: time.time() >= killed + RESTART_AFTER, RESTART_AFTER + 1,
                   "the restart delay")
    lab.start_agent(wait=False)  # the same command, as a supervisor would
    ready = lab.wait_agent_ready()
    assert lab.agent is not None and lab.agent.pid != first_pid
    results = batch.wait(120)
    assert len(results) == MESSAGES

    problems = lab.check_routed_once(jobs, results)
    assert problems == [], "\n".join(problems[:20])

    replies = [r for result in results for r in result.replies]
    assert [r for r in replies if r.code >= 500] == []
    assert [r for r in replies if r.stage in ("ERROR", "CONNECT")] == []
    outage = [r for r in replies if 400 <= r.code < 500 and r.enhanced != "4.7.1"]
    assert outage, "the kill hit no traffic: nothing was deferred"
    assert all(r.enhanced == "4.3.5" for r in outage), outage[:5]
    late = [r for r in outage if not killed <= r.t <= ready + GRACE]
    assert late == [], (f"4xx outside the outage {killed:.3f}..{ready:.3f}", late[:5])
    # the split deferrals are the agent's own, by design, and only for mixed routes
    split = [r for r in replies if r.enhanced == "4.7.1"]
    assert all(r.code == 450 and r.stage == "RCPT" for r in split)
    lab.assert_no_fatal()
