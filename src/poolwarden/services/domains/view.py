"""The read model of sending domains every surface shows (CLI, API, dashboard).

Per tenant domain: its roles, the latest authentication findings (stored by
``run_checks``, the one place that asks the DNS) and what DMARC aggregate reports say of
it (``core.dmarc.summarize``: pass shares by route, foreign sources, route-only breaks).
``run_checks`` checks every tenant (or some) and replaces their stored findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from poolwarden.adapters.dns_lookup import DnsLookup, PyspfEvaluator
from poolwarden.config.load import LoadedConfig
from poolwarden.config.monitors import nameserver_address
from poolwarden.core.auth import Finding, worst
from poolwarden.core.dmarc import DomainSummary, summarize
from poolwarden.core.model import DomainRole
from poolwarden.ports import Store
from poolwarden.services.domains.checks import DomainChecker

CHECK_ORDER = ("spf", "spf-route", "dkim", "dmarc", "alignment", "tracking", "return-path")


@dataclass(frozen=True, slots=True)
class DomainView:
    tenant: str | None
    domain: str
    roles: tuple[str, ...]
    findings: tuple[Finding, ...]
    checked_at: float | None
    dmarc: DomainSummary | None

    @property
    def status(self) -> str:
        return worst(self.findings) if self.findings else "unchecked"

    def by_check(self) -> dict[str, str]:
        """The worst status of each check (for one-line listings)."""
        out: dict[str, str] = {}
        for check in CHECK_ORDER:
            found = [f for f in self.findings if f.check == check]
            if found:
                out[check] = worst(found)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "domain": self.domain, "roles": list(self.roles),
                "status": self.status, "checks": self.by_check(),
                "checked_at": self.checked_at,
                "findings": [f.as_dict() for f in self.findings],
                "dmarc": self.dmarc.as_dict() if self.dmarc else None}


def checker_for(config: LoadedConfig) -> DomainChecker:
    settings = config.settings.domains
    servers = [nameserver_address(s) for s in settings.nameservers]
    lookup = DnsLookup([s for s in servers if s is not None], timeout=settings.timeout)
    return DomainChecker(lookup, PyspfEvaluator(lookup, timeout=settings.timeout * 4), settings)


def run_checks(config: LoadedConfig, store: Store, now: float,
               tenants: Sequence[str] | None = None,
               checker: DomainChecker | None = None) -> list[Finding]:
    """Check the tenants' domains (all, or ``tenants``) and store the findings."""
    checker = checker or checker_for(config)
    findings = checker.check_inventory(config.inventory, tenants)
    names: list[str | None] = [t.name for t in config.inventory.tenants
                               if tenants is None or t.name in tenants]
    if tenants is None:
        names.append(None)
    store.save_auth_findings(findings, at=now, tenants=names)
    return findings


def domain_views(config: LoadedConfig, store: Store, *, tenant: str | None = None,
                 domain: str | None = None, since: int | None = None) -> list[DomainView]:
    """Every tenant domain (and pool return path) with findings and DMARC summary."""
    stored = store.auth_findings(tenant=tenant)
    findings: dict[tuple[str | None, str], list[tuple[Finding, float]]] = {}
    for f, at in stored:
        findings.setdefault((f.tenant, f.domain), []).append((f, at))
    summaries = {(s.tenant, s.domain): s
                 for s in summarize(store.dmarc_records(tenant=tenant, domain=domain,
                                                        since=since))}
    rows: list[tuple[str | None, str, tuple[str, ...]]] = []
    for t in config.inventory.tenants:
        if tenant is not None and t.name != tenant:
            continue
        for sd in t.domain_roles():
            rows.append((t.name, sd.domain, tuple(r.value for r in DomainRole
                                                  if r in sd.roles)))
    if tenant is None:
        for pool in config.inventory.pools:
            if pool.return_path_domain:
                rows.append((None, pool.return_path_domain, (f"return-path:{pool.name}",)))
    out = []
    for owner, name, roles in rows:
        if domain is not None and name != domain:
            continue
        found = findings.get((owner, name), [])
        out.append(DomainView(owner, name, roles, tuple(f for f, _ in found),
                              max((at for _, at in found), default=None),
                              summaries.get((owner, name))))
    return out


def foreign_domains(views: Iterable[DomainView]) -> list[DomainView]:
    """The domains that DMARC reports show someone else sending as."""
    return [v for v in views if v.dmarc is not None and v.dmarc.foreign.messages]
