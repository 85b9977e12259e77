"""DMARC aggregate reports as values, and the arithmetic of what they say about a tenant.

A report (RFC 7489 appendix C, RFC 9990) is a reporter's count of the mail it saw claiming a
domain, per source IP, with the DKIM/SPF results and the DMARC verdict it reached. This
module holds those values as parsed (``wire.dmarc_xml`` builds them), the joined record
that names the tenant, egress IP and route behind a source IP, and the pure summaries the
surfaces show: the aligned pass shares per tenant, domain and route, the sources that are
not ours, and alignment that fails only on some routes. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DkimAuth:
    domain: str
    selector: str | None
    result: str
    human_result: str | None = None


@dataclass(frozen=True, slots=True)
class SpfAuth:
    domain: str
    scope: str | None
    result: str
    human_result: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    type: str
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyPublished:
    domain: str
    p: str | None = None
    sp: str | None = None
    np: str | None = None
    adkim: str | None = None  # "r" or "s"; None when the reporter left it out
    aspf: str | None = None
    pct: int | None = None
    fo: str | None = None
    testing: str | None = None
    discovery_method: str | None = None
    version_published: str | None = None


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """One ``<record>``: ``count`` messages from ``source_ip`` with the same results."""

    source_ip: str
    count: int
    disposition: str
    dkim: str  # DMARC's evaluation: an aligned DKIM pass ("pass") or not
    spf: str  # the same for SPF
    header_from: str
    envelope_from: str | None = None
    envelope_to: str | None = None
    reasons: tuple[Reason, ...] = ()
    dkim_auth: tuple[DkimAuth, ...] = ()
    spf_auth: tuple[SpfAuth, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC passed: either identifier passed aligned with the From domain."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True, slots=True)
class AggregateReport:
    org_name: str
    report_id: str
    begin: int
    end: int
    policy: PolicyPublished
    records: tuple[DmarcRecord, ...]
    email: str | None = None
    extra_contact_info: str | None = None
    errors: tuple[str, ...] = ()
    generator: str | None = None
    version: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The report's identity: a reporter's report id is unique for that reporter only."""
        return f"{self.org_name.strip().lower()}|{self.report_id.strip()}"

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.records)


@dataclass(frozen=True, slots=True)
class JoinedRecord:
    """A record with what we know of its source: our egress IP or not, tenant, route."""

    report_key: str
    begin: int
    end: int
    record: DmarcRecord
    ours: bool  # the source IP is one of our egress IPs
    tenant: str | None
    route: str | None  # the pool (or ``dedicated:TENANT``) the IP belongs to
    note: str = ""


@dataclass(frozen=True, slots=True)
class Share:
    """Messages and how many of them passed each check (aligned)."""

    messages: int = 0
    dmarc_pass: int = 0
    dkim_aligned: int = 0
    spf_aligned: int = 0

    def add(self, record: DmarcRecord) -> Share:
        n = record.count
        return Share(self.messages + n, self.dmarc_pass + (n if record.passed else 0),
                     self.dkim_aligned + (n if record.dkim == "pass" else 0),
                     self.spf_aligned + (n if record.spf == "pass" else 0))

    def ratio(self, part: int) -> float | None:
        return part / self.messages if self.messages else None

    def as_dict(self) -> dict[str, int | float | None]:
        return {"messages": self.messages, "dmarc_pass": self.dmarc_pass,
                "dkim_aligned": self.dkim_aligned, "spf_aligned": self.spf_aligned,
                "dmarc_pass_share": self.ratio(self.dmarc_pass),
                "dkim_aligned_share": self.ratio(self.dkim_aligned),
                "spf_aligned_share": self.ratio(self.spf_aligned)}


@dataclass(frozen=True, slots=True)
class DomainSummary:
    """What the reports say about one tenant domain (the 5322.From domain)."""

    tenant: str | None
    domain: str
    ours: Share
    by_route: dict[str, Share]
    foreign: Share  # mail claiming the domain from IPs that are not ours
    foreign_sources: dict[str, Share] = field(default_factory=dict)
    findings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"tenant": self.tenant, "domain": self.domain, "ours": self.ours.as_dict(),
                "by_route": {k: v.as_dict() for k, v in sorted(self.by_route.items())},
                "foreign": self.foreign.as_dict(),
                "foreign_sources": {k: v.as_dict() for k, v in
                                    sorted(self.foreign_sources.items(),
                                           key=lambda kv: -kv[1].messages)},
                "findings": list(self.findings)}


# a route whose aligned share is this far below the domain's best route is called out
ROUTE_GAP = 0.5


def summarize(records: Iterable[JoinedRecord]) -> list[DomainSummary]:
    """Per (tenant, From domain): shares on our IPs by route, foreign sources, findings."""
    groups: dict[tuple[str | None, str], list[JoinedRecord]] = {}
    for joined in records:
        key = (joined.tenant, joined.record.header_from)
        groups.setdefault(key, []).append(joined)
    out = []
    for (tenant, domain), rows in sorted(groups.items(),
                                         key=lambda kv: (kv[0][0] or "~", kv[0][1])):
        ours, foreign = Share(), Share()
        by_route: dict[str, Share] = {}
        sources: dict[str, Share] = {}
        for j in rows:
            if j.ours:
                ours = ours.add(j.record)
                route = j.route or "(no route)"
                by_route[route] = by_route.get(route, Share()).add(j.record)
            else:
                foreign = foreign.add(j.record)
                sources[j.record.source_ip] = sources.get(j.record.source_ip,
                                                          Share()).add(j.record)
        out.append(DomainSummary(tenant, domain, ours, by_route, foreign, sources,
                                 _findings(domain, by_route, foreign, sources)))
    return out


def _findings(domain: str, by_route: dict[str, Share], foreign: Share,
              sources: dict[str, Share]) -> tuple[str, ...]:
    found: list[str] = []
    if foreign.messages:
        found.append(f"{foreign.messages:,} messages claiming {domain} came from "
                     f"{len(sources)} source(s) that are not our egress IPs "
                     f"({foreign.dmarc_pass:,} of them passed DMARC)")
    for check in ("spf_aligned", "dkim_aligned", "dmarc_pass"):
        shares = {route: getattr(s, check) / s.messages
                  for route, s in by_route.items() if s.messages}
        if len(shares) < 2:
            continue
        best = max(shares.values())
        for route, share in sorted(shares.items()):
            if best - share >= ROUTE_GAP:
                label = check.replace("_", " ").replace("aligned", "aligned pass")
                found.append(f"{label} breaks only on route {route}: {share:.0%} there "
                             f"against {best:.0%} on the best route")
    return tuple(found)
