"""Authentication findings for sending domains: values, and the record grammar we read.

A ``Finding`` is one check of one tenant domain (optionally on one route and IP) with its
status, the record text it read and the reason, in words an operator can act on. This
module also reads the tag lists of DMARC (RFC 7489 6.3) and DKIM key (RFC 6376 3.6.1)
records; SPF is evaluated by a library behind ``ports.SpfEvaluator``, never parsed here.
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OK = "ok"
WARNING = "warning"
ERROR = "error"
UNKNOWN = "unknown"  # the DNS did not answer: neither good nor bad
STATUS_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, ERROR: 3}


@dataclass(frozen=True, slots=True)
class SpfVerdict:
    """RFC 7208 result (pass, fail, softfail, neutral, none, permerror, temperror)."""

    result: str
    explanation: str = ""
    lookups: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    tenant: str | None
    domain: str
    check: str  # spf | spf-route | dkim | dmarc | alignment | tracking | return-path
    status: str  # ok | warning | error | unknown
    reason: str
    record: str | None = None
    route: str | None = None
    ip: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"tenant": self.tenant, "domain": self.domain, "check": self.check,
                "status": self.status, "reason": self.reason, "record": self.record,
                "route": self.route, "ip": self.ip}


def tags(record: str) -> dict[str, str]:
    """``k=v; k2=v2`` tags (DMARC, DKIM), keys lower-cased; later repeats are ignored."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if eq and key and key not in out:
            out[key] = "".join(value.split())
    return out


def spf_denied(findings: Iterable[Finding]) -> dict[str, frozenset[str]]:
    """MAIL FROM domain → the egress IPs its SPF does not authorize (``spf-route`` errors):
    what ``routing.skip_spf_unauthorized`` keeps mail away from."""
    out: dict[str, set[str]] = {}
    for f in findings:
        if f.check == "spf-route" and f.status == ERROR and f.ip is not None:
            out.setdefault(f.domain, set()).add(f.ip)
    return {domain: frozenset(ips) for domain, ips in out.items()}


def worst(findings: Iterable[Finding]) -> str:
    return max((f.status for f in findings), key=STATUS_RANK.__getitem__, default=OK)
