"""The DNS the domain checks need, as small Protocols (adapters implement them).

``Resolver`` answers TXT and CNAME questions (DKIM keys, DMARC records, tracking hosts);
``SpfEvaluator`` runs the full SPF evaluation (RFC 7208: include, redirect, macros, the
ten-lookup limit) of a domain for one IP. Both raise ``DnsTemporaryError`` when the DNS
could not answer (timeout, SERVFAIL), so a check says "unknown" rather than "missing".
Shared with the DNS monitors: any dnspython-backed resolver can implement ``Resolver``.
"""

from __future__ import annotations

from typing import Protocol

from poolwarden.core.auth import SpfVerdict
from poolwarden.core.errors import PoolwardenError


class DnsTemporaryError(PoolwardenError):
    """The DNS did not answer (timeout, SERVFAIL, no server reachable)."""


class Resolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """Each TXT record at ``name`` as one string (its parts joined without separator,
        RFC 7208 3.3), following CNAMEs; [] when the name or the type does not exist."""
        ...

    def cname(self, name: str) -> str | None:
        """The CNAME target of ``name`` (without the final dot), or None."""
        ...


class SpfEvaluator(Protocol):
    def evaluate(self, domain: str, ip: str) -> SpfVerdict:
        """The SPF result of ``domain`` for mail from ``ip``."""
        ...
