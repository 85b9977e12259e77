"""Joining a DMARC report's records to our side: egress IP, tenant and route.

A record says "``count`` messages claiming FROM-DOMAIN came from SOURCE-IP". For each one:

* **ours** when SOURCE-IP is one of our egress IPs; otherwise the mail claiming the domain
  came from someone else (a forwarder, another ESP the tenant also uses, or a spoofer);
* **tenant**: the owner of the From domain (or of a parent domain) in the inventory; when
  no tenant owns it and the IP is ours, the one tenant that sent from that IP in the
  report's window (the ``senders`` the store's per-IP-and-tenant day counters give);
* **route**: the pool the IP belongs to (``dedicated:TENANT`` for a tenant's own IP).

A note says when the attribution is weaker than that (several tenants sent from the IP,
the owner recorded no sending from it in the window). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from poolwarden.core.dmarc import AggregateReport, JoinedRecord
from poolwarden.core.inventory import canonical_ip
from poolwarden.core.model import Inventory, PoolKind

DAY = 86400


class Joiner:
    """Built once per inventory; ``join`` is then dict lookups per record."""

    def __init__(self, inventory: Inventory) -> None:
        self.owner: dict[str, str] = {}
        for tenant in inventory.tenants:
            for domain in tenant.domains:
                self.owner.setdefault(domain.lower().rstrip("."), tenant.name)
        self.route: dict[str, str] = {}
        for pool in inventory.pools:
            if pool.kind is PoolKind.SHARED:
                for ip in pool.ips:
                    self.route[canonical_ip(ip)] = pool.name
        for tenant in inventory.tenants:
            for ip in tenant.dedicated_ips:
                self.route[canonical_ip(ip)] = f"dedicated:{tenant.name}"
        for pool in inventory.pools:
            for ip in pool.ips:
                self.route.setdefault(canonical_ip(ip), pool.name)
        self.ours = {canonical_ip(ip.address) for ip in inventory.ips}

    def owner_of(self, domain: str) -> str | None:
        domain = domain.lower().rstrip(".")
        while domain:
            found = self.owner.get(domain)
            if found is not None:
                return found
            _, _, domain = domain.partition(".")
        return None

    def join(self, report: AggregateReport,
             senders: Mapping[str, frozenset[str]] | None = None) -> list[JoinedRecord]:
        """Every record of ``report`` joined; ``senders`` maps our IPs to the tenants that
        sent from them in the report's window (None: not known, no check)."""
        out = []
        ips: dict[str, str] = {}  # a report repeats its sources and domains: parse once
        owners: dict[str, str | None] = {}
        for record in report.records:
            ip = ips.get(record.source_ip)
            if ip is None:
                ip = ips[record.source_ip] = canonical_ip(record.source_ip)
            ours = ip in self.ours
            if record.header_from in owners:
                tenant = owners[record.header_from]
            else:
                tenant = owners[record.header_from] = self.owner_of(record.header_from)
            note = ""
            if ours and senders is not None:
                sent = senders.get(ip, frozenset())
                if tenant is None and len(sent) == 1:
                    tenant = next(iter(sent))
                    note = f"From domain owned by no tenant; {tenant} alone sent from {ip}"
                elif tenant is None and sent:
                    note = f"From domain owned by no tenant; {len(sent)} tenants sent from {ip}"
                elif tenant is not None and tenant not in sent:
                    note = f"no sending by {tenant} from {ip} recorded in the report's window"
            elif tenant is None and ours:
                note = "From domain owned by no tenant"
            out.append(JoinedRecord(report.key, report.begin, report.end, record, ours,
                                    tenant, self.route.get(ip) if ours else None, note))
        return out


def window_days(report: AggregateReport) -> range:
    """The UTC days the report covers (the counters' day buckets)."""
    return range(report.begin // DAY, report.end // DAY + 1)
