"""Builders for tests and benchmarks: a small ESP inventory and events, without a config file.

Public test helpers: pure values, no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import (
    EgressIp,
    Inventory,
    IpState,
    Plan,
    Pool,
    PoolKind,
    Tenant,
    Tier,
)
from poolwarden.core.providers import DEFAULT_PROVIDERS

GOOD_POOL_IPS = ("127.0.0.11", "127.0.0.12")
NEW_POOL_IPS = ("127.0.0.13", "127.0.0.14")


def small_esp(*, extra_tenants: tuple[Tenant, ...] = ()) -> Inventory:
    """Two shared pools, one dedicated IP per tenant that has a plan needing one."""
    tenants = (
        Tenant("shop", Plan.SHARED, domains=("shop.example",), sasl_usernames=("shop",)),
        Tenant("bank", Plan.DEDICATED, domains=("bank.example",), dedicated_ips=("127.0.0.21",)),
        Tenant("news", Plan.MAJOR_VIA_SHARED, domains=("news.example",),
               dedicated_ips=("127.0.0.22",)),
        Tenant("startup", Plan.PROVE_THEN_SHARE, domains=("startup.example",),
               dedicated_ips=("127.0.0.23",)),
        Tenant("law", Plan.PRIVATE_ROUTING, domains=("law.example", "lawblog.example"),
               dedicated_ips=("127.0.0.24",), private_domains=("law.example",),
               client_addresses=("10.0.0.5",)),
        Tenant("big", Plan.AUTO, domains=("big.example",), dedicated_ips=("127.0.0.25",)),
        *extra_tenants,
    )
    ips = tuple(EgressIp(a, f"mta{a.rsplit('.', 1)[1]}.example.net")
                for a in (*GOOD_POOL_IPS, *NEW_POOL_IPS))
    dedicated = tuple(EgressIp(f"127.0.0.2{i}", f"ded{i}.example.net",
                               IpState.WARMING if i == 3 else IpState.ACTIVE)
                      for i in range(1, 6))
    pools = (
        Pool("shared-good", PoolKind.SHARED, frozenset({Tier.GOOD}), GOOD_POOL_IPS),
        Pool("shared-new", PoolKind.SHARED, frozenset({Tier.NEW, Tier.RISKY}), NEW_POOL_IPS),
    )
    return Inventory(tenants=tenants, ips=ips + dedicated, pools=pools,
                     providers=DEFAULT_PROVIDERS)


_keys = itertools.count()


def event(kind: EventKind, *, tenant: str = "shop", time: float = 86400.0 * 20000,
          provider: str = "google", ip: str | None = "127.0.0.11",
          sending_domain: str | None = None, key: str | None = None) -> Event:
    return Event(key=key or f"k{next(_keys)}", time=time, kind=kind, tenant=tenant,
                 provider=provider, ip=ip, sending_domain=sending_domain)


def many(kind: EventKind, count: int, **kwargs: object) -> Iterator[Event]:
    for _ in range(count):
        yield event(kind, **kwargs)  # type: ignore[arg-type]
