"""R4: suspension = HOLD, never dropped, never sent from another IP; release keeps a route.

A real Postfix in a private network namespace (``tests.support.postfix_lab``).
"""

from __future__ import annotations

import collections
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.support import (
    NEW,
    by_recipient,
    held,
    postfix,
    start_lab,
)
from tests.support.postfix_lab import Job, PostfixLab, new_message_id


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


@postfix
def test_r4_suspension_holds_and_release_delivers_from_the_current_route(
        lab: PostfixLab) -> None:
    tenant, sender = "bigretail", "orders@bigretail.example"
    version = max(lab.snapshot_versions())
    lab.poolwarden("override", tenant, "--tier", "suspended", "--why", "test",
                   "--config", str(lab.config))
    lab.wait_snapshot_after(version, timeout=5)
    try:
        domains = ("smallbiz.example", "gmail.com")
        jobs = [Job(sender=sender, rcpts=(f"r4-{i}@{domains[i % 2]}",),
                    message_id=new_message_id(f"r4-{i}")) for i in range(50)]
        results = lab.send_many(jobs, concurrency=4)
        assert all(r.codes() == [250, 250, 250] for r in results), [
            r for r in results if r.codes() != [250, 250, 250]]
        ids = [r.message_id for r in results]
        lab.wait_until(lambda: len(held(lab, sender)) == 50, 10, "50 messages on hold")
        time.sleep(1.5)
        assert lab.deliveries(ids) == []
        queue = [m for m in lab.postqueue_json() if m["sender"] == sender]
        assert len(queue) == 50 and all(m["queue_name"] == "hold" for m in queue), queue

        # HOLD at RCPT and FILTER at END-OF-MESSAGE both took effect: the held queue file
        # carries the route its release will use
        queue_id = held(lab, sender)[0]
        log = lab.log_text()
        assert f"{queue_id}: filter: END-OF-MESSAGE" in log
        assert "End-of-data triggers FILTER pw-127-0-0-21:" in log
        assert "NOQUEUE: hold: RCPT" in log
        postcat = subprocess.run(["postcat", "-c", str(lab.etc), "-e", "-q", queue_id],
                                 capture_output=True, text=True, check=True).stdout
        assert "content_filter: pw-127-0-0-21:" in postcat, postcat

        # release refuses while the tenant is still suspended
        refused = lab.poolwarden("hold", "release", tenant, "--postfix-config", str(lab.etc),
                                 "--config", str(lab.config), check=False)
        assert refused.returncode == 1, refused
        assert "suspended" in refused.stderr
        assert len(held(lab, sender)) == 50
    finally:
        lab.poolwarden("override", tenant, "--tier", "risky", "--why", "ok",
                       "--config", str(lab.config))
    released = lab.poolwarden("hold", "release", tenant, "--postfix-config", str(lab.etc),
                              "--config", str(lab.config))
    assert "released 50 held messages" in released.stdout, released.stdout
    assert "decision log for 50" in released.stdout, released.stdout
    deliveries = lab.wait_delivered(50, timeout=30, message_ids=ids)
    time.sleep(0.5)
    deliveries = lab.deliveries(ids)
    assert len(deliveries) == 50
    assert collections.Counter(d.message_id for d in deliveries) == dict.fromkeys(ids, 1)
    current = lab.routes([(sender, d.rcpt) for d in deliveries])
    assert all(d.peer == current[(sender, d.rcpt)].ip == "127.0.0.21" for d in deliveries)
    assert [m for m in lab.postqueue_json() if m["sender"] == sender] == []
    assert "status=bounced" not in "\n".join(
        line for line in lab.log_text().splitlines() if "r4-" in line)


@postfix
def test_held_mixed_route_mail_keeps_one_route_per_held_copy(lab: PostfixLab) -> None:
    """A suspended major-via-shared tenant: HOLD is message-wide too, so the agent splits
    the recipients by their release route; each held copy carries its own FILTER."""
    tenant, sender = "travelhub", "trips@travelhub.example"
    version = max(lab.snapshot_versions())
    lab.poolwarden("override", tenant, "--tier", "suspended", "--why", "test",
                   "--config", str(lab.config))
    lab.wait_snapshot_after(version, timeout=5)
    try:
        result = lab.send(sender, ("kim@gmail.com", "lee@smallbiz.example"))
        assert result.transactions == 2 and not result.failed, result
        lab.wait_until(lambda: len(held(lab, sender)) == 2, 10, "2 held copies")
        routes = set()
        for queue_id in held(lab, sender):
            postcat = subprocess.run(["postcat", "-c", str(lab.etc), "-e", "-q", queue_id],
                                     capture_output=True, text=True, check=True).stdout
            routes |= {line.split(":", 1)[1].strip() for line in postcat.splitlines()
                       if line.startswith("content_filter:")}
        assert "pw-127-0-0-22:" in routes and len(routes) == 2, routes
    finally:
        lab.poolwarden("override", tenant, "--tier", "risky", "--why", "ok",
                       "--config", str(lab.config))
    lab.poolwarden("hold", "release", tenant, "--postfix-config", str(lab.etc),
                   "--config", str(lab.config))
    got = by_recipient(lab.wait_delivered(2, 20, [result.message_id]))
    assert [d.peer for d in got["lee@smallbiz.example"]] == ["127.0.0.22"]
    assert len(got["kim@gmail.com"]) == 1 and got["kim@gmail.com"][0].peer in NEW
