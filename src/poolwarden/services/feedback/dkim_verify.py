"""DKIM verification of feedback mail (dkimpy), with the key lookups on a chosen DNS server.

``DkimVerifier.verify(raw)`` checks up to ``MAX_SIGNATURES`` DKIM-Signature headers of a
message and returns a ``DkimResult``: the signing domains (``d=``) whose signatures
verify, and for the others why not. It never raises for a bad message (a malformed
signature is just a failed one); it raises ``DkimTemporaryError`` when a key could not be
fetched for a temporary reason (timeout, SERVFAIL, no server reachable), so the caller
can ask for the message again instead of judging it on a DNS hiccup.

Key lookups: ``txt_lookup(nameservers, timeout)`` asks the given servers (or the system
resolver when none is given) with dnspython, no search list and no cache. A test or a
caller may pass any ``dnsfunc(name: bytes, timeout: float) -> bytes | None``, dkimpy's
own lookup interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints
import dns.exception
import dns.nameserver
import dns.resolver

__all__ = ["MAX_SIGNATURES", "DkimResult", "DkimTemporaryError", "DkimVerifier",
           "TxtLookup", "txt_lookup"]

MAX_SIGNATURES = 5  # each costs a DNS lookup: a message cannot make us do more

TxtLookup = Callable[..., bytes | None]  # dkimpy's dnsfunc: (name, timeout=...) -> TXT

# dkimpy logs every failed signature at ERROR; the reason is in our result instead
_quiet = logging.getLogger("poolwarden.dkim.dkimpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class DkimTemporaryError(Exception):
    """A DKIM key could not be fetched for a temporary reason: judge the message later."""


@dataclass(frozen=True, slots=True)
class DkimResult:
    """What the signatures of one message prove."""

    signatures: int  # DKIM-Signature headers found
    valid: tuple[str, ...]  # signing domains (d=, lower case) whose signature verifies
    failures: tuple[str, ...]  # "d=DOMAIN: why" for every signature that does not

    def describe(self) -> str:
        if not self.signatures:
            return "no DKIM signature"
        parts = [f"valid signature by {d}" for d in self.valid] + list(self.failures)
        return "; ".join(parts)


def txt_lookup(nameservers: Sequence[tuple[str, int]] = (), timeout: float = 5.0
               ) -> TxtLookup:
    """A dkimpy ``dnsfunc`` asking ``nameservers`` (host, port), or the system resolver."""
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                for host, port in nameservers]
    resolver.cache = None  # a key just published or revoked is seen at once
    resolver.timeout = min(timeout, 2.0)
    resolver.lifetime = timeout

    def lookup(name: bytes | str, timeout: float = timeout) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(text, "TXT", raise_on_no_answer=False, search=False,
                                      lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return None  # no such key: a permanent failure of that signature
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.NoResolverConfiguration) as exc:
            raise DkimTemporaryError(f"DKIM key {text} could not be fetched: "
                                     f"{type(exc).__name__}") from exc
        except dns.exception.DNSException:
            return None  # a malformed name and the like: not a key, and never will be
        for record in answer:
            return b"".join(record.strings)
        return None

    return lookup


class DkimVerifier:
    """Verifies DKIM signatures with one key lookup function."""

    def __init__(self, dnsfunc: TxtLookup, *, timeout: float = 5.0,
                 max_signatures: int = MAX_SIGNATURES) -> None:
        self.dnsfunc = dnsfunc
        self.timeout = timeout
        self.max_signatures = max_signatures

    def verify(self, raw: bytes) -> DkimResult:
        if raw.startswith(b"From ") and b"\n" in raw[:1000]:  # an mbox separator line
            raw = raw[raw.index(b"\n") + 1:]
        try:
            message = dkim.DKIM(raw, logger=_quiet, timeout=self.timeout)
        except Exception as exc:  # dkimpy refuses some malformed messages outright
            return DkimResult(0, (), (f"message not checkable: {type(exc).__name__}",))
        count = sum(1 for name, _ in message.headers if name.lower() == b"dkim-signature")
        valid: list[str] = []
        failures: list[str] = []
        for idx in range(min(count, self.max_signatures)):
            domain = "?"
            try:
                prep = message.verify_headerprep(idx)
                if prep:
                    domain = prep[0][b"d"].decode("ascii", "replace").lower().rstrip(".")
                ok = message.verify(idx, dnsfunc=self.dnsfunc)
                why = "" if ok else "signature does not verify (or no usable key)"
            except DkimTemporaryError:
                raise
            except dkim.DKIMException as exc:
                ok, why = False, str(exc)[:200]
            except Exception as exc:  # a bug in a corner of dkimpy: a failure, not a crash
                ok, why = False, f"unverifiable ({type(exc).__name__})"
            if ok:
                if domain not in valid:
                    valid.append(domain)
            else:
                failures.append(f"d={domain}: {why}")
        if count > self.max_signatures:
            failures.append(f"{count - self.max_signatures} more signatures not checked")
        return DkimResult(count, tuple(valid), tuple(failures))
