"""Consistency rules for an Inventory: names, addresses, pools, tiers and plans fit together.

``validate_inventory`` returns ``(path, problem)`` pairs, a path such as
``("pools", 1, "ips")`` pointing into the declared tuples (which mirror the
configuration file's arrays), empty when all is well. Pure: it never reads
files or raises; the config layer turns paths into file lines.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from poolwarden.core.model import TIER_RANK, Inventory, Plan, PoolKind, Tier

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

SHARED_POOL_TIERS: frozenset[Tier] = frozenset({Tier.GOOD, Tier.NEW, Tier.RISKY})
# plans that send at least some mail from the tenant's own IPs
NEEDS_DEDICATED: frozenset[Plan] = frozenset(
    {Plan.DEDICATED, Plan.MAJOR_VIA_SHARED, Plan.PROVE_THEN_SHARE, Plan.PRIVATE_ROUTING})
# plans that may route some mail through a shared pool chosen by tier
USES_SHARED: frozenset[Plan] = frozenset(
    {Plan.SHARED, Plan.MAJOR_VIA_SHARED, Plan.PROVE_THEN_SHARE, Plan.PRIVATE_ROUTING, Plan.AUTO})

_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
                   r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")


def canonical_ip(text: str) -> str:
    """The canonical text of an IP address (``::1`` for ``0::0001``), or the input if invalid."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text


def _domain(text: str) -> str:
    return text.strip().lower().rstrip(".")


def validate_inventory(inv: Inventory) -> list[Problem]:
    """Every consistency problem in ``inv``, in declaration order of the checks."""
    return [*_names(inv), *_addresses(inv), *_pools(inv), *_tenants(inv), *_coverage(inv)]


def _names(inv: Inventory) -> list[Problem]:
    problems: list[Problem] = []
    groups: list[tuple[str, list[str]]] = [
        ("tenant", [t.name for t in inv.tenants]),
        ("pool", [p.name for p in inv.pools]),
        ("provider", [p.name for p in inv.providers]),
    ]
    for kind, names in groups:
        section = kind + "s"
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if not name.strip():
                problems.append(((section, i, "name"), f"{kind} name is empty"))
            elif not _NAME.fullmatch(name):
                problems.append(((section, i, "name"),
                                 f"{kind} name {name!r} contains whitespace or control characters"))
            elif name in seen:
                problems.append(((section, i, "name"), f"duplicate {kind} name {name!r} "
                                 f"(also {section}[{seen[name]}])"))
            else:
                seen[name] = i
    for i, provider in enumerate(inv.providers):
        problems += _hosts(("providers", i, "domains"), provider.domains, "domain")
        problems += _hosts(("providers", i, "mx_suffixes"), provider.mx_suffixes, "MX suffix")
    return problems


def _hosts(path: Path, values: Iterable[str], what: str) -> list[Problem]:
    return [(path, f"{what} {v!r} is not a valid domain name") for v in values
            if not _HOST.fullmatch(v)]


def _addresses(inv: Inventory) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, ip in enumerate(inv.ips):
        try:
            key = str(ipaddress.ip_address(ip.address.strip()))
        except ValueError:
            problems.append((("ips", i, "address"),
                             f"{ip.address!r} is not a valid IPv4 or IPv6 address"))
            continue
        if key in seen:
            problems.append((("ips", i, "address"),
                             f"duplicate IP {ip.address} (also ips[{seen[key]}])"))
        seen.setdefault(key, i)
        problems += _hosts(("ips", i, "helo"), [ip.helo], "HELO name")
    return problems


def _pools(inv: Inventory) -> list[Problem]:
    problems: list[Problem] = []
    declared = {canonical_ip(ip.address) for ip in inv.ips}
    owner: dict[str, str] = {}
    tier_pool: dict[Tier, str] = {}
    for i, pool in enumerate(inv.pools):
        ips_path: Path = ("pools", i, "ips")
        if not pool.ips:
            problems.append((ips_path, f"pool {pool.name!r} has no IPs"))
        for address in pool.ips:
            key = canonical_ip(address)
            if key not in declared:
                problems.append((ips_path, f"pool {pool.name!r}: IP {address} is not declared "
                                 "in [[ips]]"))
            elif key in owner:
                problems.append((ips_path, f"pool {pool.name!r}: IP {address} is already in "
                                 f"pool {owner[key]!r}"))
            else:
                owner[key] = pool.name
        if pool.kind is not PoolKind.SHARED:
            continue
        tiers_path: Path = ("pools", i, "tiers")
        if not pool.tiers:
            problems.append((tiers_path, f"shared pool {pool.name!r} serves no tier"))
        for tier in sorted(pool.tiers - SHARED_POOL_TIERS, key=TIER_RANK.__getitem__):
            problems.append((tiers_path, f"shared pool {pool.name!r} cannot serve tier "
                             f"'{tier.value}' (only good, new and risky)"))
        for tier in sorted(pool.tiers & SHARED_POOL_TIERS, key=TIER_RANK.__getitem__):
            if tier in tier_pool:
                problems.append((tiers_path, f"tier '{tier.value}' is served by two shared "
                                 f"pools: {tier_pool[tier]!r} and {pool.name!r}"))
            else:
                tier_pool[tier] = pool.name
    return problems


def _tenants(inv: Inventory) -> list[Problem]:
    problems: list[Problem] = []
    declared = {canonical_ip(ip.address) for ip in inv.ips}
    in_shared = {canonical_ip(a) for p in inv.pools if p.kind is PoolKind.SHARED for a in p.ips}
    claimed: dict[tuple[str, str], str] = {}  # (what, value) -> tenant name
    for i, t in enumerate(inv.tenants):
        label = f"tenant {t.name!r}"
        if t.plan in NEEDS_DEDICATED and not t.dedicated_ips:
            problems.append((("tenants", i, "plan"),
                             f"{label}: plan '{t.plan.value}' needs dedicated_ips"))
        if t.plan is Plan.PRIVATE_ROUTING and not t.private_domains:
            problems.append((("tenants", i, "plan"), f"{label}: plan 'private-routing' needs "
                             "private_domains (the domains that leave from its own IPs)"))
        domains = {_domain(d) for d in t.domains}
        problems += _hosts(("tenants", i, "domains"), t.domains, "domain")
        if t.private_domains and t.plan is not Plan.PRIVATE_ROUTING:
            problems.append((("tenants", i, "private_domains"), f"{label}: private_domains "
                             f"only apply to plan 'private-routing', not '{t.plan.value}'"))
        stray = [d for d in t.private_domains if _domain(d) not in domains]
        if stray:
            problems.append((("tenants", i, "private_domains"), f"{label}: private_domains "
                             f"{', '.join(stray)} not among the tenant's domains"))
        for address in t.dedicated_ips:
            key = canonical_ip(address)
            if key not in declared:
                problems.append((("tenants", i, "dedicated_ips"),
                                 f"{label}: IP {address} is not declared in [[ips]]"))
            elif key in in_shared:
                problems.append((("tenants", i, "dedicated_ips"),
                                 f"{label}: dedicated IP {address} is also in a shared pool"))
        for address in t.client_addresses:
            if not _is_ip(address):
                problems.append((("tenants", i, "client_addresses"),
                                 f"{label}: {address!r} is not a valid IPv4 or IPv6 address"))
        for what, field, values in (
            ("domain", "domains", [_domain(d) for d in t.domains]),
            ("dedicated IP", "dedicated_ips", [canonical_ip(a) for a in t.dedicated_ips]),
            ("SASL username", "sasl_usernames", list(t.sasl_usernames)),
            ("client address", "client_addresses", [canonical_ip(a) for a in t.client_addresses]),
        ):
            for value in dict.fromkeys(values):
                other = claimed.setdefault((what, value), t.name)
                if other != t.name:
                    problems.append((("tenants", i, field), f"{label}: {what} {value} is "
                                     f"already assigned to tenant {other!r}"))
    return problems


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True


def _coverage(inv: Inventory) -> list[Problem]:
    """A shared pool must serve good, new and risky once any tenant can ride shared."""
    users = [t for t in inv.tenants if t.plan in USES_SHARED]
    if not users:
        return []
    served = {tier for p in inv.pools if p.kind is PoolKind.SHARED for tier in p.tiers}
    missing = sorted(SHARED_POOL_TIERS - served, key=TIER_RANK.__getitem__)
    return [(("pools",), f"no shared pool serves tier '{tier.value}', needed by tenant "
             f"{users[0].name!r} (plan '{users[0].plan.value}')") for tier in missing]
