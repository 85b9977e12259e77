"""The main job on the example configuration: simulate days of traffic and run the loop.

Each simulated day, every tenant's mail is routed by the real decision function (held
mail produces no outcome), the outcomes are stored and tiers are evaluated. ``simulate``
yields what each day did (events stored, moves made) and the surfaces print it; the
tenants' profiles, the worst shared IP and sample routes are here for them to show.
Re-running the same day adds nothing twice. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from poolwarden.core.events import Event
from poolwarden.core.policy import RouteRequest, decide_for
from poolwarden.core.reputation import Scope
from poolwarden.core.snapshot import Action, Decision, Snapshot
from poolwarden.core.tiers import TierMove
from poolwarden.services.reputation.engine import DAY, Engine, day_of
from poolwarden.sim.traffic import assign_profiles, day_events

SAMPLE_RECIPIENTS = ("someone@gmail.com", "someone@smallbiz.example")


@dataclass(frozen=True, slots=True)
class SimulatedDay:
    """One simulated day: its number (1-based), its UTC day, what was stored and moved."""

    number: int
    day: int
    added: int
    duplicates: int
    moves: list[TierMove]


def _router(snapshot: Snapshot, tenant: str, sender: str) -> Callable[[str], str | None]:
    entry = snapshot.tenants[tenant]

    def pick(recipient: str) -> str | None:
        decision = decide_for(entry, RouteRequest(recipient=recipient, sender=sender), snapshot)
        return decision.ip if decision.action is Action.ROUTE else None

    return pick


def profile_stories(engine: Engine) -> list[tuple[str, str, str]]:
    """(tenant, plan, the story its simulated traffic tells) per configured tenant."""
    tenants = engine.config.inventory.tenants
    profiles = assign_profiles(tenants)
    return [(t.name, t.plan.value, profiles[t.name].story()) for t in tenants]


def simulate(engine: Engine, *, days: int, seed: int, now: float) -> Iterator[SimulatedDay]:
    """Route, store and evaluate ``days`` days of traffic ending on ``now``'s day."""
    tenants = engine.config.inventory.tenants
    profiles = assign_profiles(tenants)
    first_day = day_of(now) - days + 1
    for index in range(days):
        day = first_day + index
        end_of_day = min(now, (day + 1) * DAY - 1)
        snapshot = engine.snapshot(end_of_day)
        events: list[Event] = []
        for tenant in tenants:
            sender = f"news@{tenant.domains[0]}" if tenant.domains else "news@unknown.example"
            events.extend(day_events(tenant, profiles[tenant.name], day=day, day_index=index,
                                     pick_ip=_router(snapshot, tenant.name, sender), seed=seed))
        result = engine.add_events(events)
        moves = engine.evaluate(end_of_day)
        yield SimulatedDay(index + 1, day, result.added, result.duplicates, list(moves))


def run_demo(engine: Engine, *, days: int, seed: int, now: float) -> list[SimulatedDay]:
    """Every simulated day at once (for callers that only want the stored result)."""
    return list(simulate(engine, days=days, seed=seed, now=now))


def sample_routes(engine: Engine, snapshot: Snapshot) -> list[tuple[str, str, Decision]]:
    """(tenant, recipient, decision) for each tenant and each sample recipient."""
    out = []
    for tenant in engine.config.inventory.tenants:
        sender = f"news@{tenant.domains[0]}" if tenant.domains else None
        for recipient in SAMPLE_RECIPIENTS:
            request = RouteRequest(recipient=recipient, sender=sender)
            out.append((tenant.name, recipient,
                        decide_for(snapshot.tenants[tenant.name], request, snapshot)))
    return out


def worst_shared_ip(engine: Engine, snapshot: Snapshot, now: float) -> str | None:
    """The shared IP with the most trap hits, then the highest hard-bounce rate (None if
    every shared IP is clean)."""
    shared = [a for p in snapshot.pools.values() if p.kind.value == "shared" for a in p.ips]
    scored = []
    for address in shared:
        m = engine.metrics(Scope.IP, address, now=now, days=engine.thresholds.window_days)
        scored.append((m.trap_hits, m.hard_bounce_rate.value, address))
    scored.sort(reverse=True)
    return scored[0][2] if scored and (scored[0][0] or scored[0][1]) else None
