"""DNS lookups for the monitors, with dnspython, through the configured servers only.

``DnsResolver`` implements ``ports.AsyncResolver``: an ``dns.asyncresolver.Resolver`` built with
``configure=False`` (``/etc/resolv.conf`` is never read: it may point at a public or
off-box resolver), no search list, no cache (a listing must be seen on the next round, not
after a negative-cache TTL), a hard deadline per lookup (dnspython's ``lifetime``, and an
``asyncio`` timeout around it in case a socket hangs) and at most ``concurrency`` lookups
in flight. A DNS failure never raises: it is the lookup's ``Outcome`` (timeout, SERVFAIL),
which the monitors read as *unknown*.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from poolwarden.core.blocklists import Outcome
from poolwarden.core.errors import ConfigError
from poolwarden.ports import Lookup

# the asyncio deadline runs a little past dnspython's own, which normally fires first
_GRACE = 0.5


class DnsResolver:
    """``ports.AsyncResolver`` over dnspython's asyncio resolver."""

    def __init__(self, nameservers: Sequence[tuple[str, int]], *, timeout: float = 2.0,
                 lifetime: float = 4.0, concurrency: int = 50) -> None:
        if not nameservers:
            raise ConfigError("no DNS server to ask: set monitors.nameservers to your own "
                              "resolver", field="monitors.nameservers")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                for host, port in nameservers]
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        resolver.cache = None
        resolver.search = []
        resolver.use_search_by_default = False
        self._resolver = resolver
        self.lifetime = lifetime
        self.concurrency = concurrency
        self._limit: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._limit is None or self._loop is not loop:  # one per event loop
            self._limit = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._limit

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        async with self._semaphore():
            started = time.perf_counter()
            outcome, values, ttl = await self._ask(name, rdtype)
            return Lookup(outcome, values, ttl, time.perf_counter() - started)

    async def _ask(self, name: str, rdtype: str) -> tuple[Outcome, tuple[str, ...], float]:
        try:
            answer = await asyncio.wait_for(
                self._resolver.resolve(name, rdtype, search=False),
                self.lifetime + _GRACE)
        except dns.resolver.NXDOMAIN:
            return Outcome.NXDOMAIN, (), 0.0
        except dns.resolver.NoAnswer:
            return Outcome.NODATA, (), 0.0
        except (dns.exception.Timeout, TimeoutError):
            return Outcome.TIMEOUT, (), 0.0
        except dns.exception.DNSException:  # SERVFAIL, REFUSED, no server answered
            return Outcome.SERVFAIL, (), 0.0
        rrset = answer.rrset
        if rrset is None:
            return Outcome.NODATA, (), 0.0
        return Outcome.ANSWER, tuple(_text(r, rdtype) for r in rrset), float(rrset.ttl)


def _text(rdata: object, rdtype: str) -> str:
    if rdtype == "TXT":
        # one TXT record is several <=255-byte strings, joined without a separator
        strings: Sequence[bytes] = getattr(rdata, "strings", ())
        return b"".join(strings).decode("utf-8", "replace")
    if rdtype == "MX":
        exchange = str(getattr(rdata, "exchange", "")).rstrip(".").lower()
        return f"{getattr(rdata, 'preference', 0)} {exchange or '.'}"
    return str(rdata)
