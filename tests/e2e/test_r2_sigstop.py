"""R2 (docs/testing.md): the routing agent hangs (SIGSTOP) for 10 s under traffic, then SIGCONT.

CI-sized: 300 messages for the 8 example tenants over 8 SMTP connections, Postfix configured
by the generator (``timeout=2s``, try_limit 2, retry_delay 1 s).

Must hold: each stalled RCPT (or END-OF-DATA) gets its 451 within
``try_limit × timeout + retry_delay + 1 s`` = 6 s; after SIGCONT the same agent process serves
again without a restart and everything is delivered exactly once from its route's IP; zero
5xx; every 4xx other than the 4.7.1 split falls inside the stall.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postfix_lab import PostfixLab, SendResult, lab_unavailable, running_lab
from tests.support.real_parts import missing

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
MESSAGES = 300
STALL = 10.0
TRY_LIMIT, TIMEOUT, RETRY_DELAY = 2, 2.0, 1.0
BOUND = TRY_LIMIT * TIMEOUT + RETRY_DELAY + 1.0  # 6 s

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(EXAMPLE) as running:
        yield running


def waits(result: SendResult) -> list[tuple[float, float, int, str]]:
    """(time, seconds waited, code, stage) of each deferral: the time since the reply before
    it in the same message's dialogue."""
    out = []
    for before, reply in zip(result.replies, result.replies[1:], strict=False):
        if 400 <= reply.code < 500 and reply.enhanced != "4.7.1":
            out.append((reply.t, reply.t - before.t, reply.code, reply.stage))
    return out


def test_r2_hung_agent_defers_within_the_bound_and_recovers(lab: PostfixLab) -> None:
    assert lab.agent is not None
    pid = lab.agent.pid
    jobs = lab.tenant_traffic(MESSAGES, tag="r2")
    batch = lab.start_sending(jobs, concurrency=8, retry_for=90, retry_delay=0.5)
    lab.wait_until(lambda: len(batch.results()) >= MESSAGES // 4, 60,
                   "a quarter of the traffic", process=batch.process)
    stopped = lab.signal_agent(signal.SIGSTOP)
    try:
        time.sleep(STALL)
    finally:
        resumed = lab.signal_agent(signal.SIGCONT)
    results = batch.wait(150)
    assert len(results) == MESSAGES
    # the same process serves again: no restart
    assert lab.agent.pid == pid and lab.agent.poll() is None
    assert lab.agent_answers()
    accepted_after = [t for r in results for t in r.accepted.values() if t > resumed]
    assert accepted_after, "nothing was accepted after SIGCONT"

    problems = lab.check_routed_once(jobs, results)
    assert problems == [], "\n".join(problems[:20])

    replies = [r for result in results for r in result.replies]
    assert [r for r in replies if r.code >= 500] == []
    assert [r for r in replies if r.stage in ("ERROR", "CONNECT")] == []
    deferrals = [w for result in results for w in waits(result)]
    assert deferrals, "the stall hit no traffic"
    slow = [w for w in deferrals if w[1] > BOUND]
    assert slow == [], (f"451 later than {BOUND} s", slow[:5])
    outside = [w for w in deferrals if not stopped <= w[0] <= resumed + BOUND]
    assert outside == [], (f"4xx outside the stall {stopped:.3f}..{resumed:.3f}", outside[:5])
    # what Postfix logged: timeouts talking to the agent, then the default action
    log = lab.log_text()
    assert "problem talking to server" in log
    assert "451 4.3.5" in log
    lab.assert_no_fatal()
