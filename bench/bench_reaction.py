"""Benchmark: reaction rules on the ingest path, against a floor measured in the same run.

Feeds N delivery outcomes (75 % sent, 20 % ordinary deferrals and bounces, 5 % replies the
built-in rules match, over 200 IPs and 4 providers) through
``services.reputation.reaction.observations`` and ``ReactionState.observe_all`` with the built-in
rule set, and prints outcomes per second next to the floor: one pass that only searches
every non-sent reply with one precompiled regex (the least any reply matcher must do).
Usage: python bench/bench_reaction.py [--outcomes N]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from poolwarden.config.reaction_rules import BUILTIN_RULES, load_rule_file
from poolwarden.core.events import Event, EventKind
from poolwarden.core.reaction import ReactionState
from poolwarden.services.reputation.reaction import observations
from poolwarden.wire.postfix_correlate import Delivery, MessageInfo

PROVIDERS = ("google", "microsoft", "yahoo", "other")
REPLIES = {
    "sent": ("2.0.0", "250 2.0.0 OK queued as 12345"),
    "deferred": ("4.7.1", "host mx.example[192.0.2.9] said: 451 4.7.1 Greylisted, try later "
                          "(in reply to RCPT TO command)"),
    "bounced": ("5.1.1", "host mx.example[192.0.2.9] said: 550 5.1.1 <a@b>: User unknown "
                         "(in reply to RCPT TO command)"),
}
MATCHING = [
    ("google", "4.7.28", "host gmail-smtp-in.l.google.com[192.0.2.1] said: 421-4.7.28 "
                         "[127.0.0.9] Our system has detected an unusual rate of unsolicited "
                         "mail (in reply to end of DATA command)"),
    ("yahoo", "4.7.0", "host mta7.am0.yahoodns.net[192.0.2.2] said: 421 4.7.0 [TSS04] "
                       "Messages from 127.0.0.9 temporarily deferred due to unexpected volume "
                       "or user complaints (in reply to MAIL FROM command)"),
    ("microsoft", "5.7.606", "host x.olc.protection.outlook.com[192.0.2.3] said: 550 5.7.606 "
                             "Access denied, banned sending IP [127.0.0.9]"),
]


def outcomes(n: int) -> tuple[list[Delivery], list[Event]]:
    rng = random.Random(7)
    info = MessageInfo(host="mx1", queue_id="Q", sender="a@t.example")
    deliveries: list[Delivery] = []
    events: list[Event] = []
    t = 1_800_000_000.0
    for i in range(n):
        t += 0.01
        roll = rng.random()
        ip = f"127.0.{i % 200 // 100}.{i % 100}"
        if roll < 0.05:
            provider, dsn, reply = MATCHING[i % len(MATCHING)]
            status = "bounced" if dsn.startswith("5") else "deferred"
        else:
            status = "sent" if roll < 0.8 else ("deferred" if roll < 0.95 else "bounced")
            provider = PROVIDERS[i % len(PROVIDERS)]
            dsn, reply = REPLIES[status]
        deliveries.append(Delivery(time=t, host="mx1", queue_id=f"Q{i:X}", recipient="r@x",
                                   status=status, log_status=status, dsn=dsn, reply=reply,
                                   relay=None, transport=None, egress_ip=ip, service="smtp",
                                   message=info))
        events.append(Event(key=f"k{i}", time=t, kind=EventKind.DEFERRED, tenant=f"t{i % 50}",
                            provider=provider, ip=ip))
    return deliveries, events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outcomes", type=int, default=200_000)
    args = parser.parse_args()
    rules = load_rule_file(BUILTIN_RULES, providers=(*PROVIDERS, "apple"), pools=())
    deliveries, events = outcomes(args.outcomes)

    floor_re = re.compile(r"4\.7\.28|\[TS?S04\]")
    started = time.perf_counter()
    hits = sum(1 for d in deliveries if d.status != "sent" and floor_re.search(d.reply or ""))
    floor = time.perf_counter() - started

    state = ReactionState(rules)
    started = time.perf_counter()
    fired = state.observe_all(observations(deliveries, events))
    spent = time.perf_counter() - started
    n = args.outcomes
    print(f"{n} outcomes, {len(rules)} built-in rules: {state.matched} matches, "
          f"{len(fired)} activations ({hits} floor hits)")
    print(f"reaction rules: {n / spent:,.0f} outcomes/s; floor (one regex per non-sent "
          f"reply): {n / floor:,.0f} outcomes/s; ratio {spent / floor:.1f}x the floor")


if __name__ == "__main__":
    main()
