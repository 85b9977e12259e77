"""Mailbox-provider grouping by recipient domain and by MX host suffix.

A company domain hosted on Google Workspace is "Google": the MX suffix match
covers it, either from MX hosts the caller passes in or from a learned
domain → provider table (filled off the hot path from DNS). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from poolwarden.core.model import OTHER_PROVIDER, Provider

DEFAULT_PROVIDERS: tuple[Provider, ...] = (
    Provider(
        name="google",
        domains=("gmail.com", "googlemail.com"),
        mx_suffixes=("google.com", "googlemail.com"),
        major=True,
    ),
    Provider(
        name="microsoft",
        domains=("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk",
                 "hotmail.fr", "outlook.de", "live.co.uk"),
        mx_suffixes=("mail.protection.outlook.com", "olc.protection.outlook.com"),
        major=True,
    ),
    Provider(
        name="yahoo",
        domains=("yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.uk",
                 "yahoo.fr", "aim.com"),
        mx_suffixes=("yahoodns.net",),
        major=True,
    ),
    Provider(
        name="apple",
        domains=("icloud.com", "me.com", "mac.com"),
        mx_suffixes=("mail.icloud.com",),
        major=True,
    ),
)


class ProviderIndex:
    """Answers "which provider receives mail for this domain?" in a few dict lookups."""

    __slots__ = ("_by_domain", "_learned", "_mx_suffixes", "providers")

    def __init__(self, providers: Iterable[Provider],
                 learned: Mapping[str, str] | None = None) -> None:
        self.providers: dict[str, Provider] = {}
        self._by_domain: dict[str, Provider] = {}
        self._mx_suffixes: list[tuple[str, Provider]] = []
        for provider in providers:
            self.providers[provider.name] = provider
            for domain in provider.domains:
                self._by_domain[domain.lower()] = provider
            for suffix in provider.mx_suffixes:
                self._mx_suffixes.append((suffix.lower().strip("."), provider))
        # longest suffix first so a more specific MX pattern wins
        self._mx_suffixes.sort(key=lambda item: -len(item[0]))
        if OTHER_PROVIDER not in self.providers:
            self.providers[OTHER_PROVIDER] = Provider(name=OTHER_PROVIDER)
        # a learned entry naming a provider we no longer know falls back to "other"
        self._learned = {k.lower(): v for k, v in (learned or {}).items()
                         if v in self.providers}

    def is_major(self, name: str) -> bool:
        provider = self.providers.get(name)
        return provider is not None and provider.major

    def for_domain(self, domain: str, mx_hosts: Iterable[str] = ()) -> str:
        """The provider name for a recipient domain (and its MX hosts, when known)."""
        domain = domain.lower().rstrip(".")
        by_domain = self._by_domain
        hit = by_domain.get(domain)
        if hit is not None:
            return hit.name
        learned = self._learned.get(domain)
        if learned is not None:
            return learned
        # subdomains of a provider domain (mail.yahoo.com, eu.icloud.com)
        dot = domain.find(".")
        while dot != -1:
            hit = by_domain.get(domain[dot + 1:])
            if hit is not None:
                return hit.name
            dot = domain.find(".", dot + 1)
        for host in mx_hosts:
            name = self.for_mx_host(host)
            if name != OTHER_PROVIDER:
                return name
        return OTHER_PROVIDER

    def with_learned(self, learned: Mapping[str, str]) -> ProviderIndex:
        """The same providers with another learned domain → provider table (cheap: the
        provider tables are shared, only the learned map is new; keys lower case)."""
        clone = ProviderIndex.__new__(ProviderIndex)
        clone.providers = self.providers
        clone._by_domain = self._by_domain
        clone._mx_suffixes = self._mx_suffixes
        if set(learned.values()) <= self.providers.keys():  # the usual case: one C copy
            clone._learned = dict(learned)
        else:  # a provider no longer configured falls back to "other"
            clone._learned = {k: v for k, v in learned.items() if v in self.providers}
        return clone

    @property
    def learned(self) -> Mapping[str, str]:
        return self._learned

    def explain(self, domain: str, mx_hosts: Iterable[str] = ()) -> tuple[str, str]:
        """``(provider, how it was recognised)`` for a recipient domain, for operators."""
        domain = domain.lower().rstrip(".")
        hit = self._by_domain.get(domain)
        if hit is not None:
            return hit.name, f"recipient domain {domain} is one of {hit.name}'s domains"
        learned = self._learned.get(domain)
        if learned is not None:
            return learned, f"MX of {domain} is at {learned} (learned from DNS by monitord)"
        dot = domain.find(".")
        while dot != -1:
            parent = domain[dot + 1:]
            hit = self._by_domain.get(parent)
            if hit is not None:
                return hit.name, f"{domain} is a subdomain of {hit.name}'s {parent}"
            dot = domain.find(".", dot + 1)
        for host in mx_hosts:
            name = self.for_mx_host(host)
            if name != OTHER_PROVIDER:
                return name, f"MX host {host} matches {name}'s MX suffixes"
        return OTHER_PROVIDER, (f"{domain}: neither a provider domain nor an MX at a "
                                "provider (not resolved yet, or hosted elsewhere)")

    def for_mx_host(self, host: str) -> str:
        host = host.lower().rstrip(".")
        for suffix, provider in self._mx_suffixes:
            if host == suffix or host.endswith("." + suffix):
                return provider.name
        return OTHER_PROVIDER


@dataclass(frozen=True, slots=True)
class MxVerdict:
    """Which provider receives a domain's mail, judged from its MX records."""

    domain: str
    provider: str
    host: str | None  # the MX host that decided (lowest preference); None: none usable
    how: str


def classify_mx(index: ProviderIndex, domain: str, records: Sequence[tuple[int, str]],
                *, exists: bool = True) -> MxVerdict:
    """The provider of ``domain`` from its MX records ``(preference, host)``.

    The lowest-preference host decides (the one mail goes to first); no MX record means
    the domain itself is the mail host (RFC 5321 implicit MX); a null MX (RFC 7505) or a
    domain that does not exist is "other" (mail to it cannot be delivered anyway).
    """
    domain = domain.lower().rstrip(".")
    if not exists:
        return MxVerdict(domain, OTHER_PROVIDER, None, "the domain does not exist")
    if not records:
        name = index.for_mx_host(domain)
        return MxVerdict(domain, name, domain, "no MX record: the domain is its own mail host")
    preference, host = min(records)
    host = host.lower().rstrip(".")
    if not host or host == ".":
        return MxVerdict(domain, OTHER_PROVIDER, None, "null MX: the domain accepts no mail")
    name = index.for_mx_host(host)
    how = (f"MX {host} (preference {preference}) matches {name}" if name != OTHER_PROVIDER
           else f"MX {host} (preference {preference}) is at no known provider")
    return MxVerdict(domain, name, host, how)
