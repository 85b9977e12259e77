"""The operator's own spam traps: addresses and whole domains nobody legitimate mails.

Pure. Any delivery *or attempt* to a trap is a trap hit for the tenant and
egress IP that sent it; the log ingester and anything else that sees a
recipient call ``trap_hit_for`` (``services.feedback.traps.traps_of(config)`` builds the
``Traps`` from the ``[traps]`` section). Matching ignores case; a trap domain
also covers its subdomains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Traps", "trap_hit_for"]


def _domain(text: str) -> str:
    return text.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Traps:
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, addresses: Iterable[str] = (), domains: Iterable[str] = ()) -> Traps:
        """Traps from configured text: addresses and domains normalised (case, dots, <>)."""
        return cls(frozenset(normalise_address(a) for a in addresses if a.strip()),
                   frozenset(_domain(d) for d in domains if d.strip()))

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)


def normalise_address(address: str) -> str:
    """``<Trap@Example.NET.>`` -> ``trap@example.net``."""
    text = address.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    return f"{local.lower()}@{_domain(domain)}" if at else text.lower()


def trap_hit_for(recipient: str, traps: Traps) -> bool:
    """Whether mail to ``recipient`` (an envelope recipient address) hits a trap."""
    if not traps:
        return False
    address = normalise_address(recipient)
    if address in traps.addresses:
        return True
    if not traps.domains:
        return False
    domain = address.rpartition("@")[2]
    while domain:
        if domain in traps.domains:
            return True
        _, _, domain = domain.partition(".")
    return False
