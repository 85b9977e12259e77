"""R5: recipients of one transaction that need different routes are each delivered once
from their own IP (FILTER is message-wide; the agent splits with DEFER_IF_PERMIT 4.7.1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.support import (
    NEW,
    by_recipient,
    postfix,
    start_lab,
)
from tests.support.postfix_lab import PostfixLab


@pytest.fixture(scope="module")
def lab() -> Iterator[PostfixLab]:
    yield from start_lab()


@postfix
def test_r5_mixed_routes_in_one_transaction_each_once_from_its_ip(lab: PostfixLab) -> None:
    travel = "trips@travelhub.example"
    rcpts = ("carol@gmail.com", "dan@smallbiz.example", "erin@outlook.com", "frank@example.org")
    result = lab.send(travel, rcpts)
    # the first recipient sets the message's route; the dedicated-route ones are split off
    # (450 4.7.1) and re-sent at once in a second transaction
    assert result.transactions == 2, result
    split = [r for r in result.replies if r.stage == "RCPT" and r.code != 250]
    assert {r.rcpt for r in split} == {"dan@smallbiz.example", "frank@example.org"}, result
    assert all(r.code == 450 and r.enhanced == "4.7.1" for r in split), split
    assert set(result.accepted) == set(rcpts) and not result.failed
    lab.wait_delivered(4, timeout=20, message_ids=[result.message_id])
    time.sleep(0.3)
    got = by_recipient(lab.deliveries([result.message_id]))
    assert all(len(got[r]) == 1 for r in rcpts), got
    # major providers share the first recipient's shared-pool IP (FILTER is message-wide)
    assert got["carol@gmail.com"][0].peer in NEW
    assert got["erin@outlook.com"][0].peer == got["carol@gmail.com"][0].peer
    assert got["dan@smallbiz.example"][0].peer == "127.0.0.22"
    assert got["frank@example.org"][0].peer == "127.0.0.22"

    # private routing: the listed sending domain routes every recipient the same way
    harbor = lab.send("counsel@harborlegal.example", ("gina@gmail.com", "hal@smallbiz.example"))
    assert harbor.transactions == 1 and not harbor.failed, harbor
    lab.wait_delivered(2, timeout=20, message_ids=[harbor.message_id])
    time.sleep(0.3)
    got = by_recipient(lab.deliveries([harbor.message_id]))
    assert [d.peer for d in got["gina@gmail.com"]] == ["127.0.0.24"]
    assert [d.peer for d in got["hal@smallbiz.example"]] == ["127.0.0.24"]

    # a split where the first recipient is the dedicated one: the shared ones are split off
    reverse = lab.send(travel, ("ivan@smallbiz.example", "judy@gmail.com"))
    assert reverse.transactions == 2 and not reverse.failed, reverse
    lab.wait_delivered(2, timeout=20, message_ids=[reverse.message_id])
    time.sleep(0.3)
    got = by_recipient(lab.deliveries([reverse.message_id]))
    assert [d.peer for d in got["ivan@smallbiz.example"]] == ["127.0.0.22"]
    assert len(got["judy@gmail.com"]) == 1 and got["judy@gmail.com"][0].peer in NEW
