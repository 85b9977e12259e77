"""validate_inventory: one test per consistency rule, each against an otherwise valid inventory."""

from __future__ import annotations

from dataclasses import replace

import pytest

from poolwarden.core.inventory import canonical_ip, validate_inventory
from poolwarden.core.model import (
    EgressIp,
    Inventory,
    IpState,
    Plan,
    Pool,
    PoolKind,
    Provider,
    Tenant,
    Tier,
)
from poolwarden.core.providers import DEFAULT_PROVIDERS


def ips(*addresses: str) -> tuple[EgressIp, ...]:
    return tuple(EgressIp(address=a, helo=f"mta{i}.example.net") for i, a in enumerate(addresses))


GOOD = Pool("shared-good", PoolKind.SHARED, frozenset({Tier.GOOD}), ("10.0.0.1", "10.0.0.2"))
NEW = Pool("shared-new", PoolKind.SHARED, frozenset({Tier.NEW, Tier.RISKY}),
           ("10.0.0.3", "10.0.0.4"))
VALID = Inventory(
    tenants=(
        Tenant("small", Plan.SHARED, domains=("small.example",), sasl_usernames=("small",)),
        Tenant("big", Plan.DEDICATED, domains=("big.example",), dedicated_ips=("10.0.1.1",)),
        Tenant("hybrid", Plan.MAJOR_VIA_SHARED, domains=("hybrid.example",),
               dedicated_ips=("10.0.1.2",)),
        Tenant("private", Plan.PRIVATE_ROUTING, domains=("a.example", "b.example"),
               dedicated_ips=("2001:db8::1",), private_domains=("a.example",),
               client_addresses=("192.0.2.1",)),
    ),
    ips=(*ips("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.1", "10.0.1.2"),
         EgressIp("2001:db8::1", "v6.example.net", IpState.WARMING)),
    pools=(GOOD, NEW),
    providers=DEFAULT_PROVIDERS,
)


def with_tenant(index: int, **changes: object) -> Inventory:
    tenants = list(VALID.tenants)
    tenants[index] = replace(tenants[index], **changes)  # type: ignore[arg-type]
    return replace(VALID, tenants=tuple(tenants))


def with_pool(index: int, **changes: object) -> Inventory:
    pools = list(VALID.pools)
    pools[index] = replace(pools[index], **changes)  # type: ignore[arg-type]
    return replace(VALID, pools=tuple(pools))


def only(inv: Inventory) -> tuple[tuple[str | int, ...], str]:
    problems = validate_inventory(inv)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_inventory_has_no_problems() -> None:
    assert validate_inventory(VALID) == []


@pytest.mark.parametrize(("section", "inv"), [
    ("tenants", with_tenant(1, name="small")),
    ("pools", with_pool(1, name="shared-good")),
    ("providers", replace(VALID, providers=(*DEFAULT_PROVIDERS, Provider("google")))),
])
def test_duplicate_names(section: str, inv: Inventory) -> None:
    path, problem = only(inv)
    assert path[0] == section
    assert path[2] == "name"
    assert "duplicate" in problem


@pytest.mark.parametrize("name", ["", "  ", "two words", "evil\r\nname"])
def test_empty_or_unprintable_names(name: str) -> None:
    path, problem = only(with_tenant(0, name=name))
    assert path == ("tenants", 0, "name")
    assert "empty" in problem or "whitespace" in problem


def test_duplicate_ip_even_when_spelled_differently() -> None:
    inv = replace(VALID, ips=(*VALID.ips, EgressIp("2001:DB8:0::1", "x.example.net")))
    path, problem = only(inv)
    assert path == ("ips", 7, "address")
    assert "duplicate IP" in problem


@pytest.mark.parametrize("address", ["10.0.0.256", "not-an-ip", "2001:db8::g", ""])
def test_invalid_ip_address(address: str) -> None:
    inv = replace(VALID, ips=(*VALID.ips, EgressIp(address, "x.example.net")))
    path, problem = only(inv)
    assert path == ("ips", 7, "address")
    assert "not a valid IPv4 or IPv6 address" in problem


def test_invalid_helo_name() -> None:
    inv = replace(VALID, ips=(*VALID.ips, EgressIp("10.9.9.9", "bad helo")))
    assert only(inv)[0] == ("ips", 7, "helo")


def test_domain_claimed_by_two_tenants() -> None:
    path, problem = only(with_tenant(1, domains=("big.example", "Small.Example.")))
    assert path == ("tenants", 1, "domains")
    assert "already assigned to tenant 'small'" in problem


def test_sasl_username_claimed_by_two_tenants() -> None:
    path, _ = only(with_tenant(1, sasl_usernames=("small",)))
    assert path == ("tenants", 1, "sasl_usernames")


def test_invalid_tenant_domain() -> None:
    path, problem = only(with_tenant(0, domains=("small example",)))
    assert path == ("tenants", 0, "domains")
    assert "not a valid domain" in problem


def test_invalid_client_address() -> None:
    path, _ = only(with_tenant(3, client_addresses=("192.0.2.300",)))
    assert path == ("tenants", 3, "client_addresses")


def test_pool_references_undeclared_ip() -> None:
    path, problem = only(with_pool(0, ips=("10.0.0.1", "10.0.0.2", "10.0.0.99")))
    assert path == ("pools", 0, "ips")
    assert "10.0.0.99 is not declared in [[ips]]" in problem


def test_tenant_references_undeclared_ip() -> None:
    path, problem = only(with_tenant(1, dedicated_ips=("10.0.1.99",)))
    assert path == ("tenants", 1, "dedicated_ips")
    assert "not declared" in problem


def test_ip_in_two_pools() -> None:
    path, problem = only(with_pool(1, ips=("10.0.0.3", "10.0.0.4", "10.0.0.1")))
    assert path == ("pools", 1, "ips")
    assert "already in pool 'shared-good'" in problem


def test_pool_without_ips() -> None:
    assert only(with_pool(0, ips=()))[0] == ("pools", 0, "ips")


def test_dedicated_ip_in_a_shared_pool() -> None:
    path, problem = only(with_tenant(1, dedicated_ips=("10.0.0.1",)))
    assert path == ("tenants", 1, "dedicated_ips")
    assert "also in a shared pool" in problem


def test_dedicated_ip_in_a_dedicated_pool_is_fine() -> None:
    pool = Pool("big-own", PoolKind.DEDICATED, frozenset(), ("10.0.1.1",))
    assert validate_inventory(replace(VALID, pools=(*VALID.pools, pool))) == []


def test_dedicated_ip_assigned_to_two_tenants() -> None:
    path, problem = only(with_tenant(2, dedicated_ips=("10.0.1.2", "10.0.1.1")))
    assert path == ("tenants", 2, "dedicated_ips")
    assert "already assigned to tenant 'big'" in problem


@pytest.mark.parametrize("plan", [Plan.DEDICATED, Plan.MAJOR_VIA_SHARED,
                                  Plan.PROVE_THEN_SHARE, Plan.PRIVATE_ROUTING])
def test_plans_that_need_dedicated_ips(plan: Plan) -> None:
    problems = validate_inventory(with_tenant(0, plan=plan))
    assert (("tenants", 0, "plan"),
            f"tenant 'small': plan '{plan.value}' needs dedicated_ips") in problems


@pytest.mark.parametrize("plan", [Plan.SHARED, Plan.AUTO])
def test_plans_that_do_not_need_dedicated_ips(plan: Plan) -> None:
    assert validate_inventory(with_tenant(0, plan=plan)) == []


def test_private_domains_must_be_among_domains() -> None:
    path, problem = only(with_tenant(3, private_domains=("a.example", "c.example")))
    assert path == ("tenants", 3, "private_domains")
    assert "c.example not among the tenant's domains" in problem


def test_private_domains_only_on_private_routing() -> None:
    path, problem = only(with_tenant(1, private_domains=("big.example",)))
    assert path == ("tenants", 1, "private_domains")
    assert "only apply to plan 'private-routing'" in problem


def test_private_routing_needs_private_domains() -> None:
    path, _ = only(with_tenant(3, private_domains=()))
    assert path == ("tenants", 3, "plan")


@pytest.mark.parametrize("tier", [Tier.SUSPENDED, Tier.OFF_PLATFORM])
def test_shared_pool_tiers_are_good_new_or_risky(tier: Tier) -> None:
    path, problem = only(with_pool(1, tiers=frozenset({Tier.NEW, Tier.RISKY, tier})))
    assert path == ("pools", 1, "tiers")
    assert f"cannot serve tier '{tier.value}'" in problem


def test_tier_served_by_two_shared_pools() -> None:
    path, problem = only(with_pool(1, tiers=frozenset({Tier.GOOD, Tier.NEW, Tier.RISKY})))
    assert path == ("pools", 1, "tiers")
    assert "'good' is served by two shared pools" in problem


@pytest.mark.parametrize("plan", [Plan.SHARED, Plan.MAJOR_VIA_SHARED, Plan.PROVE_THEN_SHARE,
                                  Plan.PRIVATE_ROUTING, Plan.AUTO])
def test_every_shared_tier_needs_a_pool_when_a_tenant_can_ride_shared(plan: Plan) -> None:
    tenant = Tenant("t", plan, domains=("t.example",), dedicated_ips=("10.0.1.1",),
                    private_domains=("t.example",) if plan is Plan.PRIVATE_ROUTING else ())
    inv = replace(VALID, tenants=(tenant,), pools=(GOOD,))
    problems = validate_inventory(inv)
    assert [p for p, _ in problems] == [("pools",), ("pools",)]
    assert "no shared pool serves tier 'new'" in problems[0][1]
    assert "no shared pool serves tier 'risky'" in problems[1][1]


def test_no_shared_pool_needed_when_every_tenant_is_dedicated() -> None:
    inv = replace(VALID, tenants=(VALID.tenants[1],), pools=())
    assert validate_inventory(inv) == []


def test_canonical_ip() -> None:
    assert canonical_ip(" 2001:DB8:0::0001 ") == "2001:db8::1"
    assert canonical_ip("nope") == "nope"
