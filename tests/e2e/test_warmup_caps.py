"""End to end with a real Postfix: a warming dedicated IP sends its daily cap to Gmail, the
rest of the day's Gmail mail leaves from the shared pool.

The lab (``tests.support.postfix_lab``) runs Postfix, the recording sink and
``poolwarden serve`` in a private network namespace, from the example configuration
with a tiny warm-up schedule (Google 3 a day, Yahoo 2, everything else 1,000): the
sink's record of each connection's source address is the egress IP Postfix used.

* fitclub (prove-then-share, tier new, warmup_overflow = shared) on its warming IP
  127.0.0.23: three Gmail messages leave from .23, the next ones from shared-new
  (.13-.15); Yahoo and other domains keep leaving from .23 (their own caps);
* the agent is restarted: today's counts come back from the store, so Gmail mail
  still overflows;
* bigretail (dedicated, warmup_overflow = defer) on 127.0.0.21, also warming: after
  its three Gmail messages the next one is answered 451 4.3.5 and stays with the
  client; nothing reaches the sink from another IP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import EXAMPLE, NEW, postfix
from tests.support.postfix_lab import PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

WARM = "127.0.0.23"
SCHEDULE = ('name = "e2e"\nsource = "test: a tiny cap"\n[caps]\ngoogle = [3, 6]\n'
            'yahoo = [2, 4]\nother = [1000, 2000]\n')


def warmup_config(tmp: Path) -> Path:
    schedule = tmp / "e2e-schedule.toml"
    schedule.write_text(SCHEDULE)
    text = EXAMPLE.read_text()
    text = text.replace('ip_schedule = "sparkpost"\n',
                        f'schedule_files = ["{schedule}"]\nip_schedule = "e2e"\n', 1)
    # bigretail's IP warms too, and its tenant defers instead of overflowing
    text = text.replace('helo = "bigretail.mta.example.net"\n',
                        'helo = "bigretail.mta.example.net"\nstate = "warming"\n', 1)
    text = text.replace('client_addresses = ["192.0.2.10", "192.0.2.11"]\n',
                        'client_addresses = ["192.0.2.10", "192.0.2.11"]\n'
                        'warmup_overflow = "defer"\n', 1)
    path = tmp / "poolwarden.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    with running_lab(warmup_config(tmp_path_factory.mktemp("warmup"))) as running:
        yield running


def sent_from(lab: PostfixLab, sender: str, rcpt: str) -> str:
    """Send one message with one recipient; the source address it reached the sink from."""
    result = lab.send(sender, (rcpt,))
    assert list(result.accepted) == [rcpt], result
    (delivery,) = lab.wait_delivered(1, 20, [result.message_id])
    return delivery.peer


@postfix
def test_warming_ip_sends_its_gmail_cap_then_the_shared_pool_takes_over(lab: PostfixLab
                                                                        ) -> None:
    sender = "coach@fitclub.example"
    gmail = [sent_from(lab, sender, f"warm{i}@gmail.com") for i in range(5)]
    assert gmail[:3] == [WARM] * 3, gmail
    assert set(gmail[3:]) <= NEW, gmail  # fitclub is tier new: shared-new
    # other providers are unaffected by Google's cap
    assert sent_from(lab, sender, "warm0@yahoo.com") == WARM
    assert sent_from(lab, sender, "warm0@smallbiz.example") == WARM
    assert sent_from(lab, sender, "warm1@outlook.com") == WARM

    # poolwarden ip show: stage, today's cap and today's count per provider (the agent
    # flushes its counts every policyd.flush_interval)
    def warmup() -> dict[str, Any]:
        shown = lab.poolwarden("ip", "show", WARM, "--json", "--config", str(lab.config))
        found: dict[str, Any] = json.loads(shown.stdout)["warmup"]
        return found

    lab.wait_until(lambda: warmup()["counts"]["google"] == 3, 15, "the counts to be flushed")
    shown = warmup()
    assert (shown["schedule"], shown["stage"], shown["day"]) == ("e2e", 1, 1)
    assert shown["caps"]["google"] == 3 and shown["caps"]["yahoo"] == 2
    assert shown["counts"]["yahoo"] == 1 and shown["counts"]["microsoft"] == 1

    # a restart does not reset today's counts (flushed at shutdown, reloaded at start)
    lab.stop_agent()
    lab.start_agent()
    assert sent_from(lab, sender, "warm9@gmail.com") in NEW
    assert sent_from(lab, sender, "warm1@yahoo.com") == WARM  # Yahoo: 2nd of 2
    assert sent_from(lab, sender, "warm2@yahoo.com") in NEW  # Yahoo: over its cap


@postfix
def test_defer_setting_keeps_mail_over_the_cap_queued(lab: PostfixLab) -> None:
    sender = "orders@bigretail.example"
    assert [sent_from(lab, sender, f"big{i}@gmail.com") for i in range(3)] == \
        ["127.0.0.21"] * 3
    result = lab.send(sender, ("big3@gmail.com",))
    reply = result.rcpt_reply("big3@gmail.com")
    assert reply is not None and reply.code == 451 and reply.enhanced == "4.3.5", result
    assert "warmup_overflow = defer" in reply.text, reply
    assert not result.accepted
    assert lab.deliveries([result.message_id]) == []
    assert sent_from(lab, sender, "big0@smallbiz.example") == "127.0.0.21"
