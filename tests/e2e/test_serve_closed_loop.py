"""The closed loop with a real Postfix: one ``poolwarden serve`` routes, reads its own
outcomes back and moves a tenant, and the next message leaves from the other pool.

One process (policy agent + log follower + feedback LMTP listener), no other poolwarden
command: ``northwind-news`` (tier good) sends from the shared-good pool; the sink
answers 550 5.1.1 to ``reject*`` recipients until the hard-bounce rate crosses the
test threshold (``hard_bounce_risky`` 30 % over at least 4 outcomes); the follower
ingests the Postfix log, the embedded evaluation moves the tenant to risky with the
numbers that caused it, the snapshot is rebuilt and the next message arrives at the
sink from a shared-new address. One of the rejected messages carries a VERP return
path: Postfix's own bounce of it is delivered over LMTP to the same process and
stored as trusted feedback (reported by our own MTA: the log counts that outcome, so
no second event); an asynchronous bounce from a remote MTA, also over LMTP, is
stored trusted and counted against the tenant.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.model import Tier
from poolwarden.core.reputation import Scope
from poolwarden.services.reputation.engine import Engine, day_of
from poolwarden.wire import verp
from tests.e2e.support import EXAMPLE, GOOD, NEW, postfix
from tests.services.feedback.support import dsn
from tests.support.postfix_lab import Job, PostfixLab, lab_unavailable, new_message_id
from tests.support.real_parts import missing

TENANT, SENDER, SASL = "northwind-news", "news@northwind.example", "northwind"
SECRET = "closed-loop-verp-secret-0123456789"
VERP_DOMAIN = "bounces.lab.test"
LMTP = "127.0.0.1:10041"


class ServeLab(PostfixLab):
    """The lab whose ``poolwarden serve`` also follows the Postfix log (``--follow``)."""

    def agent_argv(self) -> list[str]:
        return [*super().agent_argv(), "--follow", str(self.maillog)]


def config_text() -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    thresholds = ("[thresholds]\nbounce_min_sample = 4\nhard_bounce_risky = 0.3\n"
                  "hard_bounce_suspend = 0.95\nhard_bounce_off_platform = 1.0\n")
    text = re.sub(r"\[thresholds\]\n(?:[a-z_]+ = [0-9.]+\n)+", thresholds, text, count=1)
    assert "bounce_min_sample = 4" in text
    return text + f"""
[policyd]
reload_interval = 0.2
flush_interval = 0.2
evaluate_interval = 0.5

[ingest]
poll_interval = 0.2
lmtp = true

[feedback]
verp_secrets = ["{SECRET}"]
verp_domain = "{VERP_DOMAIN}"
lmtp_listen = "tcp:{LMTP}"
local_reporting_mtas = ["mta.lab.test"]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    config = tmp_path_factory.mktemp("closed-loop") / "poolwarden.toml"
    config.write_text(config_text())
    # Postfix's bounces to the VERP domain go to the feedback listener of serve
    lab = ServeLab(config, extra_main_cf=f"transport_maps = inline:{{ {VERP_DOMAIN}="
                   f"lmtp:inet:{LMTP} }}\n")
    lab.start()
    try:
        yield lab
    except BaseException:
        print(lab.tail(80), file=sys.stderr)
        raise
    finally:
        lab.stop()


def send_one(lab: PostfixLab, rcpt: str, *, sender: str = SENDER) -> str:
    job = Job(sender=sender, rcpts=(rcpt,), message_id=new_message_id("loop"), sasl=SASL)
    [result] = lab.send_many([job], concurrency=1)
    assert result.codes("RCPT") == [250] and result.codes("END-OF-DATA") == [250], result
    return result.message_id


def status_of(lab: PostfixLab, rcpt: str) -> str | None:
    found = re.findall(rf"to=<{re.escape(rcpt)}>.*? status=(\w+)", lab.log_text())
    return found[-1] if found else None


def engine(lab: PostfixLab) -> tuple[Engine, Any]:
    config = load_config(lab.config)
    store = open_store(config.store_url)
    return Engine(config, store, now=time.time()), store


def tier_of(lab: PostfixLab) -> Tier:
    eng, store = engine(lab)
    try:
        return eng.standings()[TENANT].tier
    finally:
        store.close()


def lmtp_in_namespace(lab: PostfixLab, message: bytes, recipient: str) -> str:
    """Deliver ``message`` to serve's LMTP listener from inside the lab's namespace."""
    path = lab.dir / f"async-{time.time_ns()}.eml"
    path.write_bytes(message)
    host, _, port = LMTP.partition(":")
    script = ("import json, smtplib, sys\n"
              f"with smtplib.LMTP({host!r}, {port}, timeout=30) as c:\n"
              "    c.ehlo_or_helo_if_needed(); c.mail('')\n"
              f"    c.rcpt({recipient!r})\n"
              f"    code, text = c.data(open({str(path)!r}, 'rb').read())\n"
              "print(json.dumps([code, text.decode()]))\n")
    code, text = json.loads(lab.run_in_ns(sys.executable, "-c", script).stdout)
    assert code == 250, text
    return str(text)


@postfix
def test_bounces_move_the_tenant_and_its_next_message_leaves_from_the_other_pool(
        lab: PostfixLab) -> None:
    # 1. a good tenant: shared-good
    first = send_one(lab, "loop-ok1@gmail.com")
    [delivery] = lab.wait_delivered(1, timeout=30, message_ids=[first])
    assert delivery.peer in GOOD, delivery

    # 2. hard bounces at the sink; one message has a VERP return path (token: tenant, ref)
    return_path = verp.encode(SECRET.encode(), TENANT, "loop-verp", None, VERP_DOMAIN)
    rejects = [f"reject-loop{i}@smallbiz.example" for i in range(1, 4)]
    for rcpt in rejects:
        send_one(lab, rcpt)
    verp_rcpt = "reject-verp@smallbiz.example"
    send_one(lab, verp_rcpt, sender=return_path)
    rejects.append(verp_rcpt)
    lab.wait_until(lambda: all(status_of(lab, r) == "bounced" for r in rejects), 30,
                   "550 bounces in the Postfix log")

    # 3. serve ingests its own log and moves the tenant (4 of 5 hard: 80 % >= 30 %)
    lab.wait_until(lambda: tier_of(lab) is Tier.RISKY, 40, f"{TENANT} to move to risky")
    eng, store = engine(lab)
    try:
        [move] = [m for m in store.moves(TENANT) if m.after is Tier.RISKY]
        assert (move.before, move.rule, move.actor) == (Tier.GOOD, "hard_bounce_risky",
                                                         "poolwarden")
        # the move may come with the 4th outcome ingested (3 of 4) or the 5th (4 of 5)
        assert re.search(r"hard bounce rate (75\.00% over 4|80\.00% over 5) ≥ "
                         r"hard_bounce_risky 30\.00%", move.reason), move.reason
    finally:
        store.close()

    def outcomes() -> tuple[int, int]:
        eng, store = engine(lab)
        try:
            c = eng.ledger.window(Scope.TENANT, TENANT, end_day=day_of(time.time()), days=2)
            return c.delivered, c.hard_bounces
        finally:
            store.close()

    lab.wait_until(lambda: outcomes() == (1, 4), 20, "every outcome ingested")
    lab.wait_until(lambda: f"tier move {TENANT}: good -> risky" in lab.agent_log_text(), 10,
                   "the move in serve's log")

    # 4. the snapshot is rebuilt: the next message leaves from shared-new
    moved_at = lab.agent_log_text().index(f"tier move {TENANT}: good -> risky")
    lab.wait_until(lambda: re.search(r"snapshot v\d+ \(store changed\)",
                                     lab.agent_log_text()[moved_at:]) is not None, 10,
                   "a snapshot built after the move")
    after = send_one(lab, "loop-ok2@gmail.com")
    [delivery] = lab.wait_delivered(1, timeout=30, message_ids=[after])
    assert delivery.peer in NEW, delivery
    assert delivery.helo == lab.helo_of(delivery.peer)

    # 5. Postfix's own bounce of the VERP message reached serve over LMTP: trusted
    lab.wait_until(lambda: re.search(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:10041.*status=sent",
                                     lab.log_text()) is not None, 30,
                   "the bounce delivered to the LMTP listener")
    eng, store = engine(lab)
    try:
        [row] = [r for r in store.feedback(trusted=True) if r.recipient == verp_rcpt]
        assert (row.tenant, row.kind, row.message_ref, row.bounce_class) == (
            TENANT, "bounce", "loop-verp", "hard")
        assert row.reason == "reported by our own MTA mta.lab.test: counted from the logs"
        assert store.feedback(trusted=False) == []
    finally:
        store.close()

    # 6. an asynchronous bounce from a remote MTA, over LMTP: trusted and counted
    remote = verp.encode(SECRET.encode(), TENANT, "loop-async", "127.0.0.13", VERP_DOMAIN)
    reply = lmtp_in_namespace(lab, dsn(remote, "gone@example.org",
                                       reporting_mta="mx.example.org"), remote)
    assert reply == "2.0.0 Feedback trusted (bounce)"
    eng, store = engine(lab)
    try:
        counts = eng.ledger.window(Scope.TENANT, TENANT, end_day=day_of(time.time()), days=30)
        assert counts.hard_bounces == 5
        ip = eng.ledger.window(Scope.IP, "127.0.0.13", end_day=day_of(time.time()), days=30)
        assert ip.hard_bounces >= 1
    finally:
        store.close()

    # 7. SIGTERM: serve stops cleanly, reporting what ingestion read and stored
    lab.stop_agent()
    assert lab.agent is not None and lab.agent.returncode == 0
    text = lab.agent_log_text()
    stopped = re.search(r"ingest stopped: (\{.*\})", text)
    assert stopped is not None, text[-2000:]
    stats = stopped.group(1)
    assert "'feedback_trusted': 2" in stats and "'lmtp_replies_250': 2" in stats, stats
    assert "'ingest_errors': 0" in stats, stats
    eng, store = engine(lab)
    try:
        checkpoint = store.checkpoint(str(lab.maillog))
        assert checkpoint is not None and checkpoint.offset > 0
    finally:
        store.close()
