"""The names a routing ``Decision`` carries in ``rule``, declared once.

The decision log, the dashboard and the tests read these names; the snapshot
builder, the cap checks and ``decide()`` build decisions with them. A name
that embeds another value (a plan, a reaction rule) is built by a function
here from its parts, never by editing one finished name into another. Pure
constants and string formatting; no I/O.
"""

from __future__ import annotations

from typing import Final, NamedTuple

# the request names no tenant we know: the snapshot's ``unknown_tenant`` action
UNKNOWN_TENANT: Final = "unknown_tenant"
# the recipient has no domain to group by provider
BAD_RECIPIENT: Final = "bad_recipient"
# the tenant's tier answers for every recipient
TIER_SUSPENDED: Final = "tier:suspended"
TIER_OFF_PLATFORM: Final = "tier:off-platform"
# the route exists but nothing can carry mail on it
NO_USABLE_IP: Final = "no_usable_ip"
NO_POOL_FOR_TIER: Final = "no_pool_for_tier"
# every IP of the route is on a DNS blocklist: deferred, or sent anyway when the
# operator set send_when_all_listed; a tenant's listed dedicated IP overflows to shared
ALL_LISTED: Final = "blocklist:all-listed"
ALL_LISTED_SENT: Final = "blocklist:all-listed-sent"
LISTED_OVERFLOW: Final = "blocklist:overflow"

# a warm-up cap (an IP's or a new sending domain's, per provider)
WARMUP_CAP: Final = "warmup:cap"
WARMUP_DEFER: Final = "warmup:defer"  # the capped mail waits in the queue
WARMUP_OVERFLOW: Final = "warmup:overflow"  # the capped mail goes to the overflow route

# the chosen IP is not authorized by the SPF record of the message's MAIL FROM domain
SPF_REROUTE: Final = "spf:reroute"  # another IP or route of the tenant that SPF authorizes
SPF_DEFER: Final = "spf:defer"  # none: the mail waits in the queue


def shared(plan: str) -> str:
    """A route through the shared pool for the tenant's tier: ``<plan>:shared``."""
    return f"{plan}:shared"


def dedicated(plan: str) -> str:
    """A route through the tenant's own IPs: ``<plan>:dedicated``."""
    return f"{plan}:dedicated"


def restriction(kind: str, rule: str) -> str:
    """A reaction rule's restriction in force: ``restriction:<kind>:<rule>``."""
    return f"restriction:{kind}:{rule}"


class CapRules(NamedTuple):
    """The names of the decisions a daily cap causes.

    ``cap`` names the cap itself; ``deferred`` the decision that keeps capped
    mail queued, ``overflowed`` the one that sends it on the overflow route.
    A warm-up cap has three names; a reaction rule's cap or pause is known by
    its rule's name whatever it causes.
    """

    cap: str
    deferred: str
    overflowed: str

    @classmethod
    def of_restriction(cls, kind: str, rule: str) -> CapRules:
        name = restriction(kind, rule)
        return cls(name, name, name)


WARMUP_RULES: Final = CapRules(WARMUP_CAP, WARMUP_DEFER, WARMUP_OVERFLOW)
