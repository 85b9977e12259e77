"""The domain nouns: tenants, egress IPs, pools, mailbox providers, plans and tiers.

Immutable value objects only; no behaviour that needs I/O. Built by the config
layer, read by the snapshot and the decision function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Plan(StrEnum):
    """How a tenant's mail is placed: shared, dedicated, or one of the hybrids hosts use."""

    SHARED = "shared"  # always a shared pool chosen by tier
    DEDICATED = "dedicated"  # always the tenant's own IPs
    MAJOR_VIA_SHARED = "major-via-shared"  # major providers via shared, the rest dedicated
    PROVE_THEN_SHARE = "prove-then-share"  # dedicated until proven, then the good shared pool
    PRIVATE_ROUTING = "private-routing"  # only listed sending domains use the own IP
    AUTO = "auto"  # poolwarden chooses from the volume advice


class Tier(StrEnum):
    """Where a tenant stands; ordered from best to worst by ``TIER_ORDER``."""

    GOOD = "good"
    NEW = "new"
    RISKY = "risky"
    SUSPENDED = "suspended"
    OFF_PLATFORM = "off-platform"


# Lower rank = better standing. ``new`` sits below ``good``: a tenant without
# evidence is not trusted ("starts off bad until you prove yourself").
TIER_RANK: dict[Tier, int] = {
    Tier.GOOD: 0,
    Tier.NEW: 1,
    Tier.RISKY: 2,
    Tier.SUSPENDED: 3,
    Tier.OFF_PLATFORM: 4,
}


class IpState(StrEnum):
    WARMING = "warming"
    ACTIVE = "active"
    DRAINING = "draining"  # takes no new mail
    RETIRED = "retired"  # takes no mail at all


class PoolKind(StrEnum):
    SHARED = "shared"
    DEDICATED = "dedicated"


@dataclass(frozen=True, slots=True)
class EgressIp:
    address: str
    helo: str
    state: IpState = IpState.ACTIVE
    blocklisted: bool = False
    listed_on: str = ""  # which lists and what they said, when blocklisted

    @property
    def usable(self) -> bool:
        """Whether new mail may leave from this address."""
        return self.state in (IpState.ACTIVE, IpState.WARMING) and not self.blocklisted

    def unusable_reason(self) -> str:
        if self.blocklisted:
            return f"{self.address} is blocklisted" + (f" ({self.listed_on})"
                                                       if self.listed_on else "")
        return f"{self.address} is {self.state.value}"


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    kind: PoolKind
    tiers: frozenset[Tier]
    ips: tuple[str, ...]
    return_path_domain: str | None = None  # this pool's own VERP/MAIL FROM domain


class DomainRole(StrEnum):
    """What a domain is in a tenant's mail (seed 002: mailbox providers rate each one)."""

    FROM = "from"  # 5322.From: what recipients see, what DMARC protects
    MAILFROM = "mailfrom"  # 5321.MAILFROM / return path: what SPF checks
    DKIM = "dkim"  # DKIM d=: the signing domain
    TRACKING = "tracking"  # click/open tracking and image host


@dataclass(frozen=True, slots=True)
class SendingDomain:
    domain: str
    roles: frozenset[DomainRole]
    dkim_selectors: tuple[str, ...] = ()
    align: str | None = None  # "relaxed" | "strict": overrides the DMARC record's


@dataclass(frozen=True, slots=True)
class Provider:
    """A mailbox provider, recognised by recipient domain or by MX host suffix."""

    name: str
    domains: tuple[str, ...] = ()
    mx_suffixes: tuple[str, ...] = ()
    major: bool = False


OTHER_PROVIDER = "other"


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    plan: Plan
    domains: tuple[str, ...] = ()
    dedicated_ips: tuple[str, ...] = ()
    # private-routing: the sending domains that leave from the tenant's own IPs
    private_domains: tuple[str, ...] = ()
    sasl_usernames: tuple[str, ...] = ()
    client_addresses: tuple[str, ...] = ()
    initial_tier: Tier = Tier.NEW
    labels: tuple[tuple[str, str], ...] = field(default=())
    sending_domains: tuple[SendingDomain, ...] = ()

    def domain_roles(self) -> tuple[SendingDomain, ...]:
        """Every domain with its roles: the declared ones, and each other domain of
        ``domains`` as From and MAIL FROM (what a plain domain list always meant)."""
        declared = {d.domain for d in self.sending_domains}
        plain = tuple(SendingDomain(d, frozenset({DomainRole.FROM, DomainRole.MAILFROM}))
                      for d in self.domains if d not in declared)
        return self.sending_domains + plain


@dataclass(frozen=True, slots=True)
class TenantStanding:
    """A tenant's current tier as stored, and any operator pin on it."""

    tier: Tier
    since: float  # epoch seconds of the last move
    pinned: bool = False
    pinned_by: str | None = None
    pinned_why: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything the operator declares: tenants, egress IPs, pools and providers."""

    tenants: tuple[Tenant, ...]
    ips: tuple[EgressIp, ...]
    pools: tuple[Pool, ...]
    providers: tuple[Provider, ...]
