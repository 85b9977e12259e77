"""Shared pieces of the real-Postfix tests: the lab fixture's config, expected IPs, checks."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postfix_lab import (
    Delivery,
    Job,
    PostfixLab,
    SendResult,
    lab_unavailable,
    new_message_id,
    running_lab,
)
from tests.support.real_parts import missing

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
GOOD = frozenset({"127.0.0.11", "127.0.0.12"})  # shared-good
NEW = frozenset({"127.0.0.13", "127.0.0.14", "127.0.0.15"})  # shared-new (new, risky)
GMAIL = "alice@gmail.com"
SMALLBIZ = "bob@smallbiz.example"

postfix = pytest.mark.postfix


def start_lab() -> Iterator[PostfixLab]:
    """The body of each test module's ``lab`` fixture: one lab per module."""
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(EXAMPLE) as running:
        yield running


def held(lab: PostfixLab, sender: str) -> list[str]:
    return [m["queue_id"] for m in lab.postqueue_json()
            if m["queue_name"] == "hold" and m["sender"] == sender]


def send_to_hold(lab: PostfixLab, sender: str, tag: str, count: int, *,
                 concurrency: int = 2) -> list[SendResult]:
    """``count`` messages from a suspended tenant's ``sender`` to smallbiz.example: each
    accepted, then waited for in the hold queue."""
    jobs = [Job(sender=sender, rcpts=(f"{tag}-{i}@smallbiz.example",),
                message_id=new_message_id(f"{tag}-{i}")) for i in range(count)]
    results = lab.send_many(jobs, concurrency=concurrency)
    assert all(r.codes() == [250, 250, 250] for r in results), results
    lab.wait_until(lambda: len(held(lab, sender)) == count, 15, f"{count} messages on hold")
    return results



def by_recipient(deliveries: list[Delivery]) -> dict[str, list[Delivery]]:
    out: dict[str, list[Delivery]] = collections.defaultdict(list)
    for d in deliveries:
        out[d.rcpt].append(d)
    return out


def assert_each_once_from(lab: PostfixLab, results: list[SendResult],
                          expected: dict[tuple[str, str], frozenset[str]],
                          senders: dict[str, str]) -> list[Delivery]:
    """Every recipient of every result arrives once, from the IP decide() picks (which must
    be in the expected set), announcing that IP's HELO name."""
    total = sum(len(r.accepted) for r in results)
    ids = [r.message_id for r in results]
    lab.wait_delivered(total, timeout=20, message_ids=ids)
    time.sleep(0.3)  # a duplicate would show up right behind
    deliveries = lab.deliveries(ids)
    assert len(deliveries) == total, deliveries
    decisions = lab.routes([(senders[r.message_id], rcpt) for r in results
                            for rcpt in r.accepted])
    for result in results:
        assert not result.failed, result
        got = by_recipient([d for d in deliveries if d.message_id == result.message_id])
        for rcpt in result.accepted:
            sender = senders[result.message_id]
            assert len(got[rcpt]) == 1, (rcpt, got[rcpt])
            delivery = got[rcpt][0]
            assert delivery.peer in expected[(sender, rcpt)], (sender, rcpt, delivery)
            assert delivery.peer == decisions[(sender, rcpt)].ip, (sender, rcpt, delivery)
            assert delivery.helo == lab.helo_of(delivery.peer)
            assert delivery.mail_from == sender
    return deliveries


def send_plan(lab: PostfixLab, sender: str, routes: dict[str, frozenset[str]]) -> None:
    """One message per recipient (a gmail.com one and a smallbiz.example one)."""
    jobs = [Job(sender=sender, rcpts=(rcpt,), message_id=new_message_id("plan"))
            for rcpt in routes]
    results = lab.send_many(jobs)
    for result in results:
        assert result.codes("RCPT") == [250], result
        assert result.codes("END-OF-DATA") == [250], result
    assert_each_once_from(lab, results, {(sender, r): ips for r, ips in routes.items()},
                          {r.message_id: sender for r in results})
