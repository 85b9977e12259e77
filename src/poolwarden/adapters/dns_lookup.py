"""DNS lookups with dnspython for the domain checks, and the bridge pyspf evaluates through.

``DnsLookup`` implements ``ports.Resolver``: it asks the configured servers (IP, port),
or the system resolver only when none is configured, with no cache (a record just fixed
is seen at once) and bounded time. ``PyspfEvaluator`` implements ``ports.SpfEvaluator``
with pyspf (RFC 7208: include, redirect, macros, exists, the ten-lookup and void-lookup
limits, loops), whose DNS questions go through the same ``DnsLookup``: pyspf calls one
module-level ``DNSLookup`` function, which is replaced once by a dispatcher that uses the
lookup of the evaluation running in the current thread (a context variable) and refuses
to resolve when there is none, so pyspf never asks the machine's resolver behind our back.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import spf

from poolwarden.core.auth import SpfVerdict
from poolwarden.ports.resolver import DnsTemporaryError

_ACTIVE: contextvars.ContextVar[DnsLookup | None] = contextvars.ContextVar(
    "poolwarden_spf_lookup", default=None)
_INSTALL = threading.Lock()
_installed = False


class DnsLookup:
    """``ports.Resolver`` over dnspython."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] = (), timeout: float = 5.0
                 ) -> None:
        resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                    for host, port in nameservers]
        resolver.cache = None
        resolver.timeout = min(timeout, 2.0)
        resolver.lifetime = timeout
        self._resolver = resolver

    def answer(self, name: str, qtype: str) -> list[Any]:
        """The rdata at ``name`` of ``qtype``; [] for NXDOMAIN and no data."""
        try:
            return list(self._resolver.resolve(name, qtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.LifetimeTimeout) as exc:
            raise DnsTemporaryError(f"DNS lookup of {name} {qtype} failed: "
                                    f"{type(exc).__name__}") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"DNS lookup of {name} {qtype} failed: {exc}") from exc

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self.answer(name, "TXT")]

    def cname(self, name: str) -> str | None:
        found = self.answer(name, "CNAME")
        return found[0].target.to_text().rstrip(".").lower() if found else None

    def pyspf_answers(self, name: str, qtype: str) -> list[tuple[tuple[str, str], Any]]:
        """Answers in pyspf's ``DNSLookup`` shape: ((name, type), data) per record."""
        out: list[tuple[tuple[str, str], Any]] = []
        for r in self.answer(name, qtype):
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), r.address))
            elif qtype == "MX":
                out.append(((name, qtype), (r.preference, r.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), r.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), r.strings))
        return out


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: Any = 30
              ) -> list[tuple[tuple[str, str], Any]]:
    lookup = _ACTIVE.get()
    if lookup is None:
        raise spf.TempError("DNS: no resolver configured for this SPF evaluation")
    try:
        return lookup.pyspf_answers(name, qtype)
    except DnsTemporaryError as exc:
        raise spf.TempError(f"DNS {exc}") from exc


def _install() -> None:
    global _installed
    with _INSTALL:
        if not _installed:
            spf.DNSLookup = _dispatch
            _installed = True


class PyspfEvaluator:
    """``ports.SpfEvaluator`` with pyspf, asking ``lookup``."""

    def __init__(self, lookup: DnsLookup, timeout: float = 20.0) -> None:
        _install()
        self.lookup = lookup
        self.timeout = timeout

    def evaluate(self, domain: str, ip: str) -> SpfVerdict:
        token = _ACTIVE.set(self.lookup)
        try:
            query = spf.query(i=ip, s=f"postmaster@{domain}", h=domain, strict=True,
                              timeout=self.timeout, querytime=self.timeout)
            result, _code, explanation = query.check()
            return SpfVerdict(str(result), str(explanation), int(query.lookups))
        except Exception as exc:  # pyspf raises on some malformed input: a permerror
            return SpfVerdict("permerror", f"{type(exc).__name__}: {exc}")
        finally:
            _ACTIVE.reset(token)
