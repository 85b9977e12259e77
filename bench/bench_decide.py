"""Benchmark: decide() throughput and snapshot build time at 100,000 tenants and 500 IPs.

Prints decisions per second on one core next to a floor measured in the same
run (a loop doing only the two dict lookups any router needs: tenant by SASL
user, provider by recipient domain), and the snapshot build time against the
2 s target. A second run puts a fifth of the dedicated IPs in warm-up (daily caps per
provider, a third of them already at their Google cap so that mail overflows to the
shared pool) plus a few reaction-rule restrictions, with the agent's counter passed in.
Usage: python bench/bench_decide.py [--tenants N] [--requests N]
"""

from __future__ import annotations

import argparse
import random
import time

from poolwarden.core.caps import Cap, CapCounter, CapPlan
from poolwarden.core.model import (
    EgressIp,
    Inventory,
    Plan,
    Pool,
    PoolKind,
    Tenant,
    Tier,
)
from poolwarden.core.policy import RouteRequest, decide
from poolwarden.core.providers import DEFAULT_PROVIDERS
from poolwarden.core.shaping import Restriction, RestrictionKind
from poolwarden.core.snapshot import RoutingSettings, build_snapshot

PLANS = [Plan.SHARED] * 90 + [Plan.AUTO] * 6 + [Plan.DEDICATED, Plan.MAJOR_VIA_SHARED,
                                                 Plan.PROVE_THEN_SHARE, Plan.PRIVATE_ROUTING]
RECIPIENT_DOMAINS = (["gmail.com"] * 45 + ["outlook.com"] * 20 + ["yahoo.com"] * 12
                     + ["icloud.com"] * 5 + [f"company{i}.example" for i in range(18)])


def build_inventory(tenant_count: int, ip_count: int) -> tuple[Inventory, dict[str, Tier]]:
    rng = random.Random(1)
    shared = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]
    dedicated = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(ip_count - len(shared))]
    ips = [EgressIp(a, f"mta-{a}.example.net") for a in shared + dedicated]
    pools = [Pool("shared-good", PoolKind.SHARED, frozenset({Tier.GOOD}), tuple(shared[:60])),
             Pool("shared-new", PoolKind.SHARED, frozenset({Tier.NEW, Tier.RISKY}),
                  tuple(shared[60:]))]
    tenants = []
    tiers = {}
    free = iter(dedicated)
    for n in range(tenant_count):
        plan = rng.choice(PLANS)
        own: tuple[str, ...] = ()
        if plan is not Plan.SHARED:
            ip = next(free, None)
            if ip is None:
                plan = Plan.SHARED
            else:
                own = (ip,)
        name = f"t{n}"
        tenants.append(Tenant(name, plan, domains=(f"{name}.example", f"{name}-mail.example"),
                              dedicated_ips=own, sasl_usernames=(name,),
                              private_domains=(f"{name}.example",)
                              if plan is Plan.PRIVATE_ROUTING else ()))
        tiers[name] = rng.choices([Tier.GOOD, Tier.NEW, Tier.RISKY, Tier.SUSPENDED],
                                  [60, 30, 8, 2])[0]
    return Inventory(tuple(tenants), tuple(ips), tuple(pools), DEFAULT_PROVIDERS), tiers


def requests(tenant_count: int, count: int) -> list[RouteRequest]:
    rng = random.Random(2)
    out = []
    for i in range(count):
        name = f"t{rng.randrange(tenant_count)}"
        domain = rng.choice(RECIPIENT_DOMAINS)
        out.append(RouteRequest(recipient=f"user{i}@{domain}", sender=f"news@{name}.example",
                                sasl_username=name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--ips", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300_000)
    args = parser.parse_args()

    inventory, tiers = build_inventory(args.tenants, args.ips)
    advised = {t.name: bool(i % 2) for i, t in enumerate(inventory.tenants)
               if t.plan is Plan.AUTO}
    builds = []
    for _ in range(3):
        started = time.perf_counter()
        snapshot = build_snapshot(inventory, tiers=tiers, dedicated_advised=advised,
                                  settings=RoutingSettings(), version=1, built_at=0.0)
        builds.append(time.perf_counter() - started)
    build = min(builds)
    batch = requests(args.tenants, args.requests)

    # floor: the two lookups every router needs, nothing else
    by_sasl = snapshot.by_sasl
    by_domain = {d: p.name for p in inventory.providers for d in p.domains}
    started = time.process_time()
    for request in batch:
        by_sasl.get(request.sasl_username or "")
        by_domain.get(request.recipient.rpartition("@")[2])
    floor_rate = len(batch) / (time.process_time() - started)

    best = 0.0
    for _ in range(3):
        started = time.process_time()
        for request in batch:
            decide(request, snapshot, 0.0)
        best = max(best, len(batch) / (time.process_time() - started))

    # with warm-up caps, restrictions and the agent's counter
    dedicated = [ip.address for ip in inventory.ips if ip.address.startswith("10.1.")]
    warming = dedicated[::5]
    providers = ("google", "microsoft", "yahoo", "apple", "other")
    plan = CapPlan(ip_caps={(ip, p): Cap(200, f"{ip} → {p}: stage 1, 200 a day")
                            for ip in warming for p in providers},
                   full_caps={p: 10_000_000 for p in providers})
    counts = CapCounter(0)
    for ip in warming[::3]:
        counts.ips[(ip, "google")] = 200  # at the cap: Google mail overflows
    restrictions = [Restriction("bench", "google", ip, None, RestrictionKind.PAUSE,
                                until=1e12, why="bench") for ip in dedicated[1:40:4]]
    started = time.perf_counter()
    capped = build_snapshot(inventory, tiers=tiers, dedicated_advised=advised,
                            settings=RoutingSettings(), version=1, built_at=0.0, caps=plan,
                            restrictions=restrictions)
    capped_build = time.perf_counter() - started
    capped_best = 0.0
    for _ in range(3):
        started = time.process_time()
        for request in batch:
            decide(request, capped, 0.0, None, counts)
        capped_best = max(capped_best, len(batch) / (time.process_time() - started))

    print(f"tenants {args.tenants:,}, IPs {len(inventory.ips)}, requests per run {len(batch):,}")
    print(f"snapshot build: {build:.3f} s (target ≤ 2 s: {build / 2.0:.2f}× of the budget)")
    print(f"decide(): {best:,.0f} decisions/s on one core (CPU time), "
          f"{1e6 / best:.2f} µs each")
    print(f"floor (2 dict lookups): {floor_rate:,.0f}/s; decide() runs at "
          f"{best / floor_rate:.2f}× the floor's rate")
    print(f"target ≥ 200,000/s: {best / 200_000:.2f}× the target")
    print(f"with caps ({len(warming)} warming IPs × {len(providers)} providers, "
          f"{len(restrictions)} restrictions, counter passed): build {capped_build:.3f} s, "
          f"decide() {capped_best:,.0f}/s = {capped_best / best:.2f}× the uncapped rate, "
          f"{capped_best / floor_rate:.2f}× the floor, {capped_best / 200_000:.2f}× the target")


if __name__ == "__main__":
    main()
