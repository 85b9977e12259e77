"""Sending-domain rules: the roles fit together, and identifier alignment (RFC 7489 3.1).

``validate_sending_domains`` returns ``(path, problem)`` pairs like ``core.inventory``
(paths into ``tenants[i].sending_domains[j]``). ``aligned`` and ``organizational_domain``
decide whether a DKIM d= or MAIL FROM domain aligns with the From domain, strictly
(equal) or relaxed (the same organizational domain). Pure.
"""

from __future__ import annotations

import re

from poolwarden.core.model import DomainRole, Inventory, Tenant

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)+")
_SELECTOR = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
# second-level labels under which registrations happen (a small public-suffix subset;
# enough for alignment of the domains an operator declares, never for security decisions)
_MULTI_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp",
    "ne.jp", "or.jp", "com.br", "com.cn", "com.mx", "co.za", "co.in", "com.tr", "com.sg"})


def organizational_domain(domain: str) -> str:
    """The registered domain (``mail.example.co.uk`` → ``example.co.uk``)."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _MULTI_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(identifier: str, from_domain: str, mode: str | None) -> bool:
    """Whether ``identifier`` (DKIM d= or MAIL FROM domain) aligns with ``from_domain``;
    ``mode`` "s"/"strict" needs equality, anything else is relaxed (the default)."""
    a = identifier.lower().rstrip(".")
    b = from_domain.lower().rstrip(".")
    if mode in ("s", "strict"):
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _within(domain: str, parents: set[str]) -> bool:
    return any(domain == p or domain.endswith("." + p) for p in parents)


def validate_sending_domains(inv: Inventory) -> list[Problem]:
    """Problems with tenants' sending domains and pools' return-path domains."""
    problems: list[Problem] = []
    for i, tenant in enumerate(inv.tenants):
        problems += _tenant(i, tenant)
    for i, pool in enumerate(inv.pools):
        if pool.return_path_domain is not None and not _HOST.fullmatch(pool.return_path_domain):
            problems.append((("pools", i, "return_path_domain"), f"pool {pool.name!r}: "
                             f"{pool.return_path_domain!r} is not a valid domain name"))
    return problems


def _tenant(i: int, tenant: Tenant) -> list[Problem]:
    problems: list[Problem] = []
    own = {d.lower().rstrip(".") for d in tenant.domains}
    seen: dict[str, int] = {}
    label = f"tenant {tenant.name!r}"
    for j, sd in enumerate(tenant.sending_domains):
        at: Path = ("tenants", i, "sending_domains", j)
        if not _HOST.fullmatch(sd.domain):
            problems.append(((*at, "domain"), f"{label}: {sd.domain!r} is not a valid "
                             "domain name"))
            continue
        if sd.domain in seen:
            problems.append(((*at, "domain"), f"{label}: domain {sd.domain} is listed twice "
                             f"(also sending_domains[{seen[sd.domain]}])"))
        seen.setdefault(sd.domain, j)
        for role in (DomainRole.FROM, DomainRole.MAILFROM):
            if role in sd.roles and not _within(sd.domain, own):
                problems.append(((*at, "roles"), f"{label}: {sd.domain} has role "
                                 f"'{role.value}' but is not one of the tenant's domains "
                                 f"(or a subdomain of one): {', '.join(sorted(own)) or 'none'}"))
        if DomainRole.DKIM in sd.roles and not sd.dkim_selectors:
            problems.append(((*at, "dkim_selectors"), f"{label}: {sd.domain} has role 'dkim' "
                             "but no dkim_selectors"))
        if sd.dkim_selectors and DomainRole.DKIM not in sd.roles:
            problems.append(((*at, "dkim_selectors"), f"{label}: {sd.domain} lists "
                             "dkim_selectors but not the role 'dkim'"))
        for selector in sd.dkim_selectors:
            if not _SELECTOR.fullmatch(selector):
                problems.append(((*at, "dkim_selectors"), f"{label}: {selector!r} is not a "
                                 "valid DKIM selector"))
        if sd.align is not None and DomainRole.FROM not in sd.roles:
            problems.append(((*at, "align"), f"{label}: align applies to a From domain, "
                             f"and {sd.domain} has no role 'from'"))
    return problems
