"""Restrictions: the temporary limits reaction rules put on traffic, as ``decide()`` reads them.

This module is the contract between the reaction rules (which *produce*
restrictions from their store table) and the routing decision (which *honours* them).
Pure: values and an index, no I/O, no clock reads.

Contract
--------
A ``Restriction`` is one active limit, scoped either to provider × egress IP
(``ip`` set, ``tenant`` None) or to provider × tenant (``tenant`` set, ``ip``
None). ``provider`` is a provider name of the ``ProviderIndex`` ("google",
"microsoft", "yahoo", "apple", "other", or an operator-declared one).

* ``PAUSE`` (IP scope): that IP takes no mail for that provider until
  ``until``. The message overflows exactly as for an exhausted warm-up cap:
  to the shared pool serving the tenant's tier, or deferred, by the tenant's
  ``warmup_overflow`` setting ("shared" default, or "defer"). A PAUSE with a
  tenant scope pauses that tenant's mail to that provider (deferred: there is
  no other route that would not carry the same tenant's reputation).
* ``CAP`` (IP scope; also used for a ramp-back): the IP's daily cap for that
  provider becomes ``cap_factor`` × the normal cap — the warm-up cap of the
  IP's current stage, or, when the IP has no warm-up cap, the provider's
  default daily cap: the last stage of the default IP schedule (``[warmup]
  ip_schedule``, a warmed address's volume). The result is rounded down, never
  below 0. When several restrictions cover the same IP × provider, the
  tightest applies, and as each lapses the next tightest still running takes
  over (a pause, then its ramp-back steps). Counts are today's (UTC) counts the
  agent keeps; an exhausted cap overflows as above. A CAP with a tenant scope
  caps that tenant's recipients to that provider today at ``cap_factor`` × the
  provider's default daily cap; over it, the tenant's mail to that provider is
  deferred (no other route would escape a cap on the tenant itself).
* ``REROUTE`` (tenant scope): that tenant's mail to that provider goes to the
  pool named in ``pool`` (any declared pool, shared or dedicated). An unknown
  pool or a pool without a usable IP → DEFER (fail safe, never a guess).
* ``until`` is epoch seconds; the snapshot ignores restrictions with
  ``until <= built_at`` and ``decide()`` ignores those with ``until <= now``,
  so an expired restriction lifts without a new snapshot.
* ``why`` is shown to operators and copied into the Decision's reason: it
  must carry the numbers (e.g. "3 × 421 4.7.28 from google in 10 min ≥ 3").
* ``rule`` names the reaction rule; a Decision made under a restriction has
  ``rule == "restriction:<kind>:<rule>"``.

Part B hands restrictions to ``build_snapshot(..., restrictions=...)`` (an
iterable of ``Restriction``; through ``Engine.snapshot()``); nothing else is
needed from it. The snapshot keeps them as ``Snapshot.restrictions``, a
``RestrictionIndex`` (``.all`` is the tuple of live restrictions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class RestrictionKind(StrEnum):
    PAUSE = "pause"
    CAP = "cap"
    REROUTE = "reroute"


@dataclass(frozen=True, slots=True)
class Restriction:
    """One temporary limit a reaction rule put on provider × IP or provider × tenant traffic."""

    rule: str
    provider: str
    ip: str | None
    tenant: str | None
    kind: RestrictionKind
    cap_factor: float = 1.0  # CAP and ramp-back: fraction of the normal daily cap
    pool: str | None = None  # REROUTE target
    until: float = 0.0  # epoch seconds; inactive from then on
    why: str = ""  # the numbers behind it, shown to operators

    def active(self, now: float) -> bool:
        return self.until > now


@dataclass(frozen=True, slots=True)
class RestrictionIndex:
    """Restrictions by scope, for dict lookups on the hot path.

    ``by_ip[(ip, provider)]`` and ``by_tenant[(tenant, provider)]`` hold the
    restrictions of that scope; ``ips`` and ``tenants`` say quickly whether a
    scope has any at all (most have none).
    """

    all: tuple[Restriction, ...] = ()
    by_ip: Mapping[tuple[str, str], tuple[Restriction, ...]] = field(default_factory=dict)
    by_tenant: Mapping[tuple[str, str], tuple[Restriction, ...]] = field(default_factory=dict)
    ips: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()

    @classmethod
    def build(cls, restrictions: Iterable[Restriction], *, now: float) -> RestrictionIndex:
        live = tuple(r for r in restrictions if r.active(now))
        by_ip: dict[tuple[str, str], list[Restriction]] = {}
        by_tenant: dict[tuple[str, str], list[Restriction]] = {}
        for r in live:
            if r.ip is not None:
                by_ip.setdefault((r.ip, r.provider), []).append(r)
            if r.tenant is not None:
                by_tenant.setdefault((r.tenant, r.provider), []).append(r)
        return cls(all=live,
                   by_ip={k: tuple(v) for k, v in by_ip.items()},
                   by_tenant={k: tuple(v) for k, v in by_tenant.items()},
                   ips=frozenset(ip for ip, _ in by_ip),
                   tenants=frozenset(t for t, _ in by_tenant))

    def for_ip(self, ip: str, provider: str, now: float) -> tuple[Restriction, ...]:
        found = self.by_ip.get((ip, provider), ())
        return tuple(r for r in found if r.until > now)

    def for_tenant(self, tenant: str, provider: str, now: float) -> tuple[Restriction, ...]:
        found = self.by_tenant.get((tenant, provider), ())
        return tuple(r for r in found if r.until > now)


EMPTY_RESTRICTIONS = RestrictionIndex.build((), now=0.0)
