"""End to end: a provider's 421 4.7.28 pauses one IP to Gmail, through a real Postfix.

The sink answers ``421 4.7.28`` to 127.0.0.21 (bigretail's dedicated IP) for gmail.com
only, by source address (``PostfixLab.script_sink``). ``poolwarden serve`` follows the
Postfix log (``[ingest] logs``), its reaction rules see the deferrals, and after the
trigger count (3 in 5 minutes) the activation pauses 127.0.0.21 → Google for 20 s, then
ramps back (×0.5 for 5 s). The assertions are about where mail arrives: during the pause
bigretail's Gmail mail arrives from a shared-pool IP (the tenant's overflow default),
its Yahoo mail keeps arriving from 127.0.0.21, and once the pause has run its duration
Gmail mail leaves from 127.0.0.21 again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config
from poolwarden.core.reaction import Activation
from tests.e2e.support import EXAMPLE, NEW, postfix
from tests.support.postfix_lab import LabError, PostfixLab, lab_unavailable, running_lab
from tests.support.real_parts import missing

DEDICATED = "127.0.0.21"
SENDER = "orders@bigretail.example"
GMAIL_421 = ("421 4.7.28 [127.0.0.21] Our system has detected an unusual rate of unsolicited "
             "mail originating from your IP address. To protect our users from spam, mail sent "
             "from your IP address has been temporarily rate limited.")
RULES = """\
[[rules]]
name = "e2e-gmail-unusual-rate"
provider = "google"
code = '4\\.7\\.28'
scope = "ip"
trigger = "3/5m"
action = "pause"
duration = "20s"
ramp = [0.5]
ramp_step = "5s"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostfixLab]:
    reason = lab_unavailable()
    if reason is not None:
        missing(reason)
    here = tmp_path_factory.mktemp("reaction")
    (here / "rules.toml").write_text(RULES)
    config = here / "poolwarden.toml"
    # serve follows the lab's Postfix log (pw/poolwarden.toml -> log/postfix.log)
    config.write_text(EXAMPLE.read_text() + "\n[ingest]\nlogs = [\"../log/postfix.log\"]\n"
                      "poll_interval = 0.2\n\n[reaction]\nbuiltin_rules = false\n"
                      f"rule_files = [\"{here / 'rules.toml'}\"]\n")
    with running_lab(config) as running:
        yield running


def activations(lab: PostfixLab) -> list[Activation]:
    store = open_store(load_config(lab.config).store_url)
    try:
        return store.reaction_activations(ip=DEDICATED)
    finally:
        store.close()


def send_one(lab: PostfixLab, rcpt: str) -> str:
    result = lab.send(SENDER, (rcpt,))
    assert list(result.accepted) == [rcpt], result
    return result.message_id


def peer_of(lab: PostfixLab, message_id: str, timeout: float) -> str | None:
    """The source address the message arrived from, or None if it did not arrive in time."""
    try:
        (delivery,) = lab.wait_delivered(1, timeout=timeout, message_ids=[message_id])
    except LabError:
        return None
    return delivery.peer


@postfix
def test_421_4_7_28_pauses_that_ip_to_gmail_and_the_pause_lifts(lab: PostfixLab) -> None:
    lab.script_sink([{"peer": DEDICATED, "domain": "gmail.com", "reply": GMAIL_421}])
    # before: bigretail's mail leaves from its dedicated IP, to Yahoo and to Gmail (deferred)
    assert peer_of(lab, send_one(lab, "before@yahoo.com"), 20) == DEDICATED
    triggers = [send_one(lab, f"trigger{i}@gmail.com") for i in range(3)]
    lab.wait_until(lambda: bool(activations(lab)), 60,
                   "the reaction rule to fire on the 421 4.7.28 deferrals")
    (fired,) = activations(lab)
    assert (fired.rule, fired.provider, fired.ip) == ("e2e-gmail-unusual-rate", "google",
                                                      DEDICATED)
    assert fired.matches == 3 and len(fired.lines) == 3
    assert all("4.7.28" in line and f"{DEDICATED}→google" in line for line in fired.lines)
    assert "(trigger 3 in 5m)" in fired.why and "pause 127.0.0.21→google for 20s" in fired.why
    assert not any(peer_of(lab, m, 0.1) for m in triggers)  # still deferred at the sink

    # the agent rebuilds its snapshot when the store's change marker moves: until it has,
    # a probe still goes to the dedicated IP and is deferred; from then on Gmail mail goes
    # to the shared pool for tier new (bigretail's overflow is the default, "shared")
    overflowed = None
    for i in range(10):
        overflowed = peer_of(lab, send_one(lab, f"probe{i}@gmail.com"), 3)
        if overflowed is not None:
            break
    assert overflowed in NEW, overflowed
    during = [send_one(lab, f"during{i}@gmail.com") for i in range(2)]
    yahoo = send_one(lab, "during@yahoo.com")
    assert {peer_of(lab, m, 20) for m in during} <= NEW
    assert peer_of(lab, yahoo, 20) == DEDICATED  # Yahoo from the same IP keeps flowing
    assert time.time() < fired.until, "the pause ended before its checks: machine too slow"

    shown = json.loads(lab.poolwarden("ip", "show", DEDICATED, "--config", str(lab.config),
                                      "--json").stdout)
    (row,) = shown["reactions"]
    assert (row["rule"], row["phase"], row["effect_now"]) == ("e2e-gmail-unusual-rate",
                                                              "active", "pause")

    # Gmail takes our mail again; once the pause has run its 20 s, the IP sends to Gmail
    lab.script_sink([])
    lab.wait_until(lambda: time.time() > fired.until + 0.5, 40, "the pause's duration")
    after = send_one(lab, "after@gmail.com")
    assert peer_of(lab, after, 20) == DEDICATED
    assert activations(lab) == [fired]  # queued retries during the pause fired nothing more
