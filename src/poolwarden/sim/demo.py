"""The main job on the example configuration: simulate days of traffic and show the loop.

Each simulated day, every tenant's mail is routed by the real decision
function (held mail produces no outcome), the outcomes are stored, tiers are
evaluated and every move is printed with its explanation; at the end the
tenant table, the bad-neighbour ranking of the worst shared IP and sample
routes are shown. Re-running the same day adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from poolwarden.cli import render
from poolwarden.core.events import Event
from poolwarden.core.policy import RouteRequest, decide_for
from poolwarden.core.reputation import Scope
from poolwarden.core.snapshot import Action, Snapshot
from poolwarden.services.queries import reports
from poolwarden.services.reputation.engine import DAY, Engine, day_of
from poolwarden.sim.traffic import assign_profiles, day_events


def _router(snapshot: Snapshot, tenant: str, sender: str) -> Callable[[str], str | None]:
    entry = snapshot.tenants[tenant]

    def pick(recipient: str) -> str | None:
        decision = decide_for(entry, RouteRequest(recipient=recipient, sender=sender), snapshot)
        return decision.ip if decision.action is Action.ROUTE else None

    return pick


def run_demo(engine: Engine, out: Console, *, days: int, seed: int, now: float) -> None:
    tenants = engine.config.inventory.tenants
    profiles = assign_profiles(tenants)
    out.rule("poolwarden demo")
    out.print(f"{len(tenants)} tenants, {days} simulated days ending today; profiles:")
    for tenant in tenants:
        out.print(f"  {render.escape(tenant.name)} ({tenant.plan.value}): "
                  f"{profiles[tenant.name].story()}")
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
        out.print(f"day {index + 1:2d} ({render.when(day * DAY)[:10]}): {result.added:,} events"
                  f" stored, {result.duplicates:,} already there, {len(moves)} tier moves")
        for move in moves:
            render.move_line(out, reports.move_dict(move))
    snapshot = engine.snapshot(now)
    render.tenants_table(out, reports.tenant_rows(engine, snapshot, now))
    worst = _worst_shared_ip(engine, snapshot, now)
    if worst is not None:
        render.ip_detail(out, reports.ip_detail(engine, snapshot, worst, now))
    out.rule("sample routes (poolwarden route --tenant T --recipient ADDR)")
    for tenant in tenants:
        sample_sender = f"news@{tenant.domains[0]}" if tenant.domains else None
        for recipient in ("someone@gmail.com", "someone@smallbiz.example"):
            d = decide_for(snapshot.tenants[tenant.name],
                           RouteRequest(recipient=recipient, sender=sample_sender), snapshot)
            out.print(f"  {render.escape(tenant.name):<14} → {recipient:<26} "
                      f"{d.action.value.upper():<6} {d.ip or '-':<12} {render.escape(d.reason)}")


def _worst_shared_ip(engine: Engine, snapshot: Snapshot, now: float) -> str | None:
    shared = [a for p in snapshot.pools.values() if p.kind.value == "shared" for a in p.ips]
    scored = []
    for address in shared:
        m = engine.metrics(Scope.IP, address, now=now, days=engine.thresholds.window_days)
        scored.append((m.trap_hits, m.hard_bounce_rate.value, address))
    scored.sort(reverse=True)
    return scored[0][2] if scored and (scored[0][0] or scored[0][1]) else None
