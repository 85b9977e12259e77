"""Synthetic tenant traffic: daily outcome events from simple sender profiles.

A profile says how much a tenant sends, to which providers, and how its
list behaves (hard bounces, complaints, trap hits, deferrals), possibly
turning bad from a given day. Deterministic for a seed; event keys are stable
so re-running a day adds nothing twice. Uses only the package's public API.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import Plan, Tenant

PROVIDER_MIX = (("google", "gmail.com", 0.45), ("microsoft", "outlook.com", 0.25),
                ("yahoo", "yahoo.com", 0.12), ("apple", "icloud.com", 0.06),
                ("other", "smallbiz.example", 0.12))


@dataclass(frozen=True, slots=True)
class Profile:
    daily: int
    hard_bounce: float = 0.005
    complaint: float = 0.0003
    trap_per_day: float = 0.0
    deferral: float = 0.01
    turns_bad_on_day: int | None = None
    bad_hard_bounce: float = 0.09
    bad_complaint: float = 0.006
    bad_trap_per_day: float = 1.0

    def story(self) -> str:
        text = f"{self.daily:,}/day, hard bounces {self.hard_bounce:.1%}"
        if self.turns_bad_on_day is not None:
            text += (f"; from day {self.turns_bad_on_day} mails an old list "
                     f"({self.bad_hard_bounce:.0%} bounces, traps)")
        return text


def assign_profiles(tenants: Sequence[Tenant]) -> dict[str, Profile]:
    """A story for the demo: one shared tenant goes bad, one auto tenant is big."""
    profiles: dict[str, Profile] = {}
    shared_seen = auto_seen = 0
    for tenant in tenants:
        if tenant.plan is Plan.SHARED:
            shared_seen += 1
            profiles[tenant.name] = (Profile(daily=900) if shared_seen == 1 else
                                     Profile(daily=700, turns_bad_on_day=8))
        elif tenant.plan is Plan.DEDICATED:
            profiles[tenant.name] = Profile(daily=4000)
        elif tenant.plan is Plan.AUTO:
            auto_seen += 1
            profiles[tenant.name] = Profile(daily=4200 if auto_seen == 1 else 30)
        elif tenant.plan is Plan.PRIVATE_ROUTING:
            profiles[tenant.name] = Profile(daily=40)
        else:
            profiles[tenant.name] = Profile(daily=1200)
    return profiles


def day_events(tenant: Tenant, profile: Profile, *, day: int, day_index: int,
               pick_ip: Callable[[str], str | None], seed: int) -> Iterator[Event]:
    """One day of one tenant's outcomes (``day`` is the UTC day number).

    ``pick_ip(recipient)`` is the routing decision: the egress IP, or None when
    the message is not sent (held, refused or deferred), which yields no event.
    """
    rng = random.Random(f"{seed}:{tenant.name}:{day}")
    bad = profile.turns_bad_on_day is not None and day_index >= profile.turns_bad_on_day
    hard = profile.bad_hard_bounce if bad else profile.hard_bounce
    complaint = profile.bad_complaint if bad else profile.complaint
    traps = profile.bad_trap_per_day if bad else profile.trap_per_day
    domain = tenant.domains[0] if tenant.domains else None
    weights = [w for _, _, w in PROVIDER_MIX]
    base = day * 86400.0
    for n in range(profile.daily):
        provider, rcpt_domain, _ = rng.choices(PROVIDER_MIX, weights)[0]
        ip = pick_ip(f"user{n}@{rcpt_domain}")
        if ip is None:
            continue
        when = base + rng.uniform(0, 86000)
        key = f"sim:{seed}:{tenant.name}:{day}:{n}"
        if rng.random() < profile.deferral:
            yield Event(key + ":d", when, EventKind.DEFERRED, tenant.name, provider, ip, domain,
                        rcpt_domain, "421 4.7.0 try again later")
        outcome = rng.random()
        if outcome < hard:
            yield Event(key, when, EventKind.HARD_BOUNCE, tenant.name, provider, ip, domain,
                        rcpt_domain, "550 5.1.1 user unknown")
            continue
        yield Event(key, when, EventKind.DELIVERED, tenant.name, provider, ip, domain,
                    rcpt_domain)
        if rng.random() < complaint:
            yield Event(key + ":c", when + 3600, EventKind.COMPLAINT, tenant.name, provider, ip,
                        domain, rcpt_domain, "abuse")
    hits = int(traps) + (1 if rng.random() < traps - int(traps) else 0)
    for n in range(hits):
        ip = pick_ip(f"trap{n}@trap.example")
        if ip is None:
            continue
        yield Event(f"sim:{seed}:{tenant.name}:{day}:trap{n}", base + rng.uniform(0, 86000),
                    EventKind.TRAP_HIT, tenant.name, "other", ip, domain, "trap.example",
                    "pristine trap")
