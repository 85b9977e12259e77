"""The decision function: which egress IP (or hold / reject / defer) for one recipient.

``decide(request, snapshot, now, rng)`` identifies the tenant (SASL user,
sender domain or client address, in the configured order, unless the caller
names it), groups the recipient by mailbox provider and picks the route the
snapshot prepared for the tenant's plan and tier. Deterministic: the IP within
a pool comes from ``rng`` when given, else from a stable hash of the recipient.
Whenever it cannot decide, it answers DEFER with the reason. Pure; this is
the routing hot path, so it only does dict lookups on the snapshot.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple, Protocol

from poolwarden.core.snapshot import (
    Action,
    Decision,
    Route,
    Snapshot,
    TenantEntry,
    TenantLookup,
)


class RandomSource(Protocol):
    def randrange(self, stop: int, /) -> int: ...


class RouteRequest(NamedTuple):
    """One recipient to route (a NamedTuple: built on every request of the hot path)."""

    recipient: str
    tenant: str | None = None  # when the caller already knows it (CLI, tests)
    sender: str | None = None
    sasl_username: str | None = None
    client_address: str | None = None
    mx_hosts: tuple[str, ...] = ()


def _domain_of(address: str | None) -> str:
    if not address:
        return ""
    _, at, domain = address.rpartition("@")
    if not at:
        return ""
    return domain.strip().strip(">").lower().rstrip(".")


def resolve_tenant(request: RouteRequest, snapshot: Snapshot) -> str | None:
    """The tenant a request belongs to, or None when nothing identifies one."""
    if request.tenant is not None:
        return request.tenant if request.tenant in snapshot.tenants else None
    for method in snapshot.settings.tenant_lookup:
        if method is TenantLookup.SASL and request.sasl_username:
            found = snapshot.by_sasl.get(request.sasl_username)
            if found is None:
                # an authenticated user we do not know must not borrow another tenant's
                # identity through the sender domain it puts in MAIL FROM
                return None
        elif method is TenantLookup.SENDER_DOMAIN and request.sender:
            found = _by_sender_domain(_domain_of(request.sender), snapshot)
        elif method is TenantLookup.CLIENT_ADDRESS and request.client_address:
            found = snapshot.by_client.get(request.client_address)
        else:
            continue
        if found is not None:
            return found
    return None


def _by_sender_domain(domain: str, snapshot: Snapshot) -> str | None:
    by_domain = snapshot.by_domain
    while domain:
        found = by_domain.get(domain)
        if found is not None:
            return found
        _, _, domain = domain.partition(".")
    return None


def _unknown(request: RouteRequest, snapshot: Snapshot) -> Decision:
    named = request.tenant or request.sasl_username or request.sender or request.client_address
    return Decision(snapshot.settings.unknown_tenant, None, None,
                    f"no tenant matches {named!r}" if named else "request names no tenant",
                    "unknown_tenant")


def decide(request: RouteRequest, snapshot: Snapshot, now: float,
           rng: RandomSource | None = None) -> Decision:
    """Route one recipient of one message."""
    tenant = resolve_tenant(request, snapshot)
    if tenant is None:
        return _unknown(request, snapshot)
    return decide_for(snapshot.tenants[tenant], request, snapshot, rng)


def decide_for(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot,
               rng: RandomSource | None = None) -> Decision:
    """Route one recipient for an already identified tenant."""
    if entry.fixed is not None:
        return entry.fixed
    recipient_domain = _domain_of(request.recipient)
    if not recipient_domain:
        return Decision(Action.DEFER, None, None,
                        f"recipient {request.recipient!r} has no domain", "bad_recipient",
                        entry.tier, entry.plan)
    provider = snapshot.providers.for_domain(recipient_domain, request.mx_hosts)
    route: Route = entry.route
    if entry.major_route is not None and snapshot.providers.is_major(provider):
        route = entry.major_route
    elif entry.private_route is not None:
        sender_domain = _domain_of(request.sender)
        if sender_domain and sender_domain in entry.private_domains:
            route = entry.private_route
    if route.fixed is not None:
        return route.fixed
    choices = route.by_provider[provider]
    if len(choices) == 1:
        return choices[0]
    if rng is not None:
        return choices[rng.randrange(len(choices))]
    return choices[zlib.crc32(request.recipient.encode()) % len(choices)]
