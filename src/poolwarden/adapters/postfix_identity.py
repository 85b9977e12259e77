"""Tenant identity Postfix must enforce: who may use a tenant's sender domains.

The routing agent finds a message's tenant by SASL login, sender domain or client
address (``[routing] tenant_lookup``). A sender domain is whatever the client puts
in MAIL FROM, so with ``sender_domain`` in the lookup (or ``client_address``, whose
tenant could otherwise claim a neighbour's domain) anyone who can submit mail could
send as another tenant, from its dedicated IP, charged to its reputation and warm-up
budget. Postfix stops that before the agent is asked: ``smtpd_sender_login_maps``
names the SASL logins that own each tenant domain (and its subdomains, as the agent's
lookup walks up to a parent domain) and ``reject_sender_login_mismatch`` rejects MAIL
FROM in a tenant's domain from a client not logged in as that tenant (5.7.1 "Sender
address rejected: not owned by user").

Pure text in, text out: ``sender_login_lines`` is the main.cf piece the generator
emits, ``check_sender_login`` the problems ``postfix check`` reports, ``claimable``
the warnings of ``poolwarden validate``. A tenant without SASL logins cannot be
protected this way: its domains are left out of the map and ``claimable`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from poolwarden.core.model import Inventory

CLAIMING_LOOKUPS = frozenset({"sender_domain", "client_address"})
MISMATCH = "reject_sender_login_mismatch"
# both halves of reject_sender_login_mismatch, when written out separately
HALVES = ("reject_known_sender_login_mismatch", "reject_unauthenticated_sender_login_mismatch")


def needs_sender_login(tenant_lookup: Iterable[str]) -> bool:
    """Whether the lookup lets an unauthenticated client claim a tenant."""
    return bool(CLAIMING_LOOKUPS & set(tenant_lookup))


def owners(inventory: Inventory) -> list[tuple[str, tuple[str, ...]]]:
    """(domain, its tenant's SASL logins), most specific domain first: a regexp table
    answers with its first match, the agent with the longest matching domain."""
    pairs = [(domain.lower().rstrip("."), tenant.sasl_usernames)
             for tenant in inventory.tenants if tenant.sasl_usernames
             for domain in tenant.domains]
    return sorted(pairs, key=lambda p: (-p[0].count("."), p[0]))


def login_map(inventory: Inventory) -> str | None:
    """``regexp:{ {/@(.+\\.)?shop\\.example$/ shop}, … }``, or None without any owner.

    A regexp table (inline since Postfix 3.7): an ``inline:`` table would match
    ``@shop.example`` but not ``a@news.shop.example``, which the agent routes as shop."""
    # ``$$``: main.cf expands ``$name``; ``$$`` is one literal ``$`` (the regexp's anchor)
    rules = [f"{{/@(.+\\.)?{re.escape(domain)}$$/ {','.join(logins)}}}"
             for domain, logins in owners(inventory)]
    if not rules:
        return None
    return "regexp:{ " + ", ".join(rules) + " }"


def sender_login_lines(inventory: Inventory) -> list[str]:
    """The main.cf lines that keep tenants from being claimed through MAIL FROM."""
    table = login_map(inventory)
    lines = [
        "# A tenant is found by its sender domain: only its own SASL logins may use it",
        "# (and its subdomains). Needs smtpd_sasl_auth_enable = yes; clients must log in.",
        "# Keep reject_sender_login_mismatch before any permit_* in this list:",
    ]
    if table is None:
        return [*lines, "# (no tenant has sasl_usernames: nothing to protect; see "
                "poolwarden validate)"]
    return [*lines, f"smtpd_sender_login_maps = {table}",
            f"smtpd_sender_restrictions = {MISMATCH}"]


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1", "on")


def _enforced_in(restrictions: list[str]) -> bool:
    """Whether the mismatch check runs for every client: present, and no permit before it."""
    for index, item in enumerate(restrictions):
        if item == MISMATCH or item in HALVES:
            if item in HALVES and not set(HALVES) <= set(restrictions):
                return False
            return not any(r.startswith("permit") for r in restrictions[:index])
    return False


def check_sender_login(inventory: Inventory, conf: dict[str, str],
                       tenant_lookup: Iterable[str],
                       tokens: dict[str, list[str]]) -> list[str]:
    """Problems that let a client claim another tenant's sender domain.

    ``conf`` is main.cf with Postfix's defaults; ``tokens`` the restriction lists,
    split (``smtpd_sender_restrictions``, and ``smtpd_recipient_restrictions`` up to the
    policy check)."""
    lookup = [m for m in tenant_lookup if m in CLAIMING_LOOKUPS]
    if not lookup or not owners(inventory):
        return []
    why = (f"tenant_lookup has {' and '.join(lookup)}: a client that is not logged in as a "
           "tenant can send with its domain and be routed (and counted) as that tenant")
    problems = []
    maps = conf.get("smtpd_sender_login_maps", "").strip()
    if not maps:
        problems.append(f"smtpd_sender_login_maps is not set; {why}")
    else:
        for domain, _ in owners(inventory):
            if maps.startswith("regexp:{") and re.escape(domain) not in maps:
                problems.append(f"smtpd_sender_login_maps does not name {domain}; {why}")
    if not _yes(conf.get("smtpd_sasl_auth_enable", "no")):
        problems.append("smtpd_sasl_auth_enable is not yes: Postfix ignores "
                        f"{MISMATCH} without SASL; {why}")
    if not (_enforced_in(tokens.get("smtpd_sender_restrictions", []))
            or _enforced_in(tokens.get("smtpd_recipient_restrictions", []))):
        problems.append(f"no {MISMATCH} in smtpd_sender_restrictions (or before the policy "
                        f"check in smtpd_recipient_restrictions), or a permit_* before it; "
                        f"{why}")
    return problems


def claimable(inventory: Inventory, tenant_lookup: Iterable[str]) -> list[str]:
    """``poolwarden validate`` warnings: lookups an unauthenticated client can claim."""
    lookup = list(tenant_lookup)
    if not needs_sender_login(lookup):
        return []
    warnings = []
    if "sender_domain" in lookup:
        bare = [t.name for t in inventory.tenants if t.domains and not t.sasl_usernames]
        if bare:
            warnings.append(
                "tenant_lookup has sender_domain, and tenants " + ", ".join(bare) + " have no "
                "sasl_usernames: Postfix cannot tell who may use their domains, so any client "
                "that can submit mail can send as them (their dedicated IPs, their "
                "reputation). Give them SASL logins, or take sender_domain out of "
                "tenant_lookup.")
        warnings.append(
            "tenant_lookup has sender_domain: safe only when Postfix rejects MAIL FROM in a "
            "tenant's domain from clients not logged in as that tenant (poolwarden postfix "
            "config emits smtpd_sender_login_maps and reject_sender_login_mismatch; poolwarden "
            "postfix check verifies them).")
    if "client_address" in lookup:
        warnings.append(
            "tenant_lookup has client_address: any process on a tenant's client address, or "
            "any host allowed XCLIENT (smtpd_authorized_xclient_hosts), is that tenant; "
            "list only addresses the tenant alone controls.")
    return warnings
