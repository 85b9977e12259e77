"""What the monitors check, read from the configuration: the egress IPs, the tenants'
domains, the lists, and the resolver to ask.

Pure reads of a ``LoadedConfig``; the resolver is built but not used here.
"""

from __future__ import annotations

from poolwarden.adapters.resolver import DnsResolver
from poolwarden.config.load import LoadedConfig
from poolwarden.config.monitors import nameserver_address
from poolwarden.core.blocklists import Blocklist, ListKind
from poolwarden.core.model import IpState
from poolwarden.services.monitors.checks import Target


def ip_targets(config: LoadedConfig) -> list[Target]:
    """Every egress IP that may send (retired ones are not checked)."""
    return [Target(ip.address, ListKind.IP) for ip in config.inventory.ips
            if ip.state is not IpState.RETIRED]


def domain_targets(config: LoadedConfig) -> list[Target]:
    """Every tenant sending domain, once."""
    seen: dict[str, None] = {}
    for tenant in config.inventory.tenants:
        for domain in tenant.domains:
            seen.setdefault(domain.lower(), None)
    return [Target(d, ListKind.DOMAIN) for d in seen]


def lists_of(config: LoadedConfig, names: tuple[str, ...] = ()) -> list[Blocklist]:
    lists = list(config.blocklists)
    return [b for b in lists if b.name in names] if names else lists


def resolver_for(config: LoadedConfig, nameservers: tuple[str, ...] = ()) -> DnsResolver:
    """The monitors' resolver: ``nameservers`` (IP or IP:PORT) if given, else the
    configured ones; never the system resolver."""
    settings = config.settings.monitors
    texts = nameservers or settings.nameservers
    addresses = [a for a in map(nameserver_address, texts) if a is not None]
    return DnsResolver(addresses, timeout=settings.timeout, lifetime=settings.lifetime,
                       concurrency=settings.concurrency)
