"""One message, one route: the decision for a recipient inside a Postfix transaction.

Postfix's FILTER and HOLD act on the whole message, and when several FILTER
actions fire only the last one runs (docs/testing.md A1). So a message leaves
from the route its first accepted recipient got; a later recipient that
needs another route is split off (``Verdict.split``: the agent answers
DEFER_IF_PERMIT and the client sends it again in a transaction of its own).
``route_recipient(request, snapshot, now, message, counts)`` identifies the
tenant, asks ``decide_for()`` and applies that rule, taking the message's
state so far (``MessageRoute``, or None for its first recipient) as a value
and returning the state after this recipient. A held message also carries
the route its mail takes once released (``release_route``), so ``-H``
keeps it. Pure: the caller owns the per-transaction table and the counter,
and stores and counts what the verdict says.
"""

from __future__ import annotations

from typing import NamedTuple

from poolwarden.core.caps import CapCounter
from poolwarden.core.policy import (
    RandomSource,
    RouteRequest,
    decide_for,
    domain_of,
    resolve_tenant,
    unknown_tenant,
)
from poolwarden.core.snapshot import Action, Decision, Snapshot, TenantEntry

# The hot path builds a Verdict per recipient and a MessageRoute per message; NamedTuple's
# generated __new__ is a Python call that costs more than the tuple itself, so those are
# built directly with every field given (the same value ``Verdict(...)`` makes).
_new = tuple.__new__


class MessageRoute(NamedTuple):
    """A message's route, set by its first accepted recipient and never changed after
    (a NamedTuple: one is built for every message on the hot path)."""

    started: float
    decision: Decision  # ROUTE (the message leaves from ``decision.ip``) or HOLD
    tenant: str
    version: int  # the snapshot version the first recipient was routed with
    release: Decision | None = None  # held mail: the route it takes once released

    @property
    def held(self) -> bool:
        return self.decision.action is Action.HOLD


class Verdict(NamedTuple):
    """The decision for one recipient of a message, and what the caller keeps of it.

    ``decision`` is what this recipient gets (the message's first decision when
    it keeps the message's IP); with ``split`` the recipient is pushed into a
    transaction of its own instead, and ``decision`` is the route it would have
    taken. ``message`` is the message's state after this recipient (the one
    passed in, or a new one when this recipient opened it). ``count_ip`` is the
    IP this recipient leaves from, to count against today's caps for
    ``count_provider`` (and the sending domain ``count_domain`` when that
    domain is warming); None when the recipient is not routed.
    """

    decision: Decision
    tenant: str | None
    split: bool
    message: MessageRoute | None
    count_ip: str | None = None
    count_provider: str | None = None
    count_domain: str | None = None


def route_recipient(request: RouteRequest, snapshot: Snapshot, now: float,
                    message: MessageRoute | None, counts: CapCounter,
                    rng: RandomSource | None = None) -> Verdict:
    """Route one recipient of the message whose state so far is ``message``."""
    tenant = resolve_tenant(request, snapshot)
    if tenant is None:
        return _new(Verdict, (unknown_tenant(request, snapshot), None, False, message,
                              None, None, None))
    entry = snapshot.tenants[tenant]
    decision = decide_for(entry, request, snapshot, rng, counts, now)
    action = decision.action
    if action is Action.HOLD:
        return _hold(entry, request, snapshot, now, message, decision)
    if action is not Action.ROUTE:  # refused or deferred: message-wide state is untouched
        return _new(Verdict, (decision, tenant, False, message, None, None, None))
    provider = decision.provider
    applied = decision
    if message is None:
        message = _new(MessageRoute, (now, decision, tenant, snapshot.version, None))
    else:
        first = message.decision
        if first.action is not Action.ROUTE or decision.ip != first.ip:
            if (first.action is not Action.ROUTE or decision.pool is None
                    or decision.pool != first.pool or snapshot.version != message.version
                    or not _room(snapshot, counts, first.ip, provider, now)):
                return _new(Verdict, (decision, tenant, True, message, None, None, None))
            # same pool in the same snapshot, another IP only by the hash: keep the
            # message's IP, and count this recipient there, for its own provider
            applied = first
    domain = (_warming_domain(request, snapshot, provider)
              if snapshot.limits.domain_caps else None)
    return _new(Verdict, (applied, tenant, False, message, applied.ip, provider, domain))


def release_route(message: MessageRoute | None) -> Decision | None:
    """Where a held message goes once released (given at END-OF-MESSAGE); None otherwise."""
    if message is None or not message.held:
        return None
    return message.release


def _hold(entry: TenantEntry, request: RouteRequest, snapshot: Snapshot, now: float,
          message: MessageRoute | None, decision: Decision) -> Verdict:
    """Suspended: HOLD, and the route the held mail takes once released (HOLD is
    message-wide, so every recipient of a held message must agree on that route)."""
    release = (decide_for(entry.release, request, snapshot, None, None, now)
               if entry.release is not None else None)
    if release is not None and release.action is not Action.ROUTE:
        release = None  # nothing to give the held mail: released, it takes Postfix's default
    if message is None:
        return Verdict(decision, entry.name, False,
                       MessageRoute(now, decision, entry.name, snapshot.version, release))
    if (message.held and release is not None and message.release is not None
            and release.pool != message.release.pool):
        return Verdict(release, entry.name, True, message)
    return Verdict(decision, entry.name, False, message)


def _room(snapshot: Snapshot, counts: CapCounter, ip: str | None, provider: str | None,
          now: float) -> bool:
    """Whether ``ip`` may take one more recipient for ``provider`` today."""
    if not snapshot.limited or ip is None or provider is None:
        return True
    cap = snapshot.limits.ip_caps.get((ip, provider))
    live = cap.at(now) if cap is not None else None
    return live is None or counts.ip_count(ip, provider) < live.limit


def _warming_domain(request: RouteRequest, snapshot: Snapshot,
                    provider: str | None) -> str | None:
    """The sending domain to count this recipient for, when it has a cap to count against
    (called only when some sending domain is warming)."""
    if provider is None:
        return None
    domain = domain_of(request.sender)
    return domain if (domain, provider) in snapshot.limits.domain_caps else None
