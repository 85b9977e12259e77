"""One round of DNS checks: targets against blocklists, recipient domains to MX providers.

``blocklist_round`` asks every (target, list) pair that fits the query budget, at most
``resolver.concurrency`` at a time (the resolver bounds it), reads each answer with
``core.blocklists.interpret`` and fetches the list's TXT reason only for listed targets.
``resolve_mx`` looks up MX records and classifies them with ``core.providers.classify_mx``.
No state is kept here: the caller (``monitord`` or ``poolwarden check``) decides what the
findings mean for routing. Never touches the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from poolwarden.core.blocklists import Blocklist, Finding, ListKind, Outcome, Status, interpret
from poolwarden.core.providers import MxVerdict, ProviderIndex, classify_mx
from poolwarden.ports import AsyncResolver


@dataclass(frozen=True, slots=True)
class Target:
    value: str  # an IPv4 address or a domain
    kind: ListKind


@dataclass(slots=True)
class RoundResult:
    findings: list[Finding] = field(default_factory=list)
    lookups: int = 0  # DNS queries made (A and TXT)
    checked: int = 0  # (target, list) pairs answered (any status)
    skipped: int = 0  # pairs over the budget, first in line next round
    next_offset: int = 0  # where the next round starts in the pair order
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def errors(self) -> int:
        return sum(1 for f in self.findings if f.status is Status.UNKNOWN)


def pairs_of(targets: Sequence[Target], lists: Sequence[Blocklist]
             ) -> list[tuple[Target, Blocklist]]:
    """Every (target, list) of the same kind, in a stable order; IPv6 IPs are skipped
    (the built-in lists are IPv4 lists)."""
    return [(t, b) for t in targets for b in lists
            if b.kind is t.kind and not (t.kind is ListKind.IP and ":" in t.value)]


async def blocklist_round(resolver: AsyncResolver, targets: Sequence[Target],
                          lists: Sequence[Blocklist], *, budget: int,
                          offset: int = 0,
                          keep: Collection[tuple[str, str]] | None = None) -> RoundResult:
    """Check the pairs that fit ``budget`` queries, starting at ``offset`` (a round that
    ran out of budget continues where it stopped next time). With ``keep``, clear findings
    are returned only for those (target, list) pairs (the ones with a listing state): the
    rest is counted in ``checked`` only, so a round's result stays small."""
    started = time.perf_counter()
    pairs = pairs_of(targets, lists)
    result = RoundResult()
    if not pairs:
        result.seconds = time.perf_counter() - started
        return result
    offset %= len(pairs)
    ordered = pairs[offset:] + pairs[:offset]
    chosen = ordered[:budget]
    result.skipped = len(pairs) - len(chosen)
    result.next_offset = (offset + len(chosen)) % len(pairs)

    async def one(target: Target, blocklist: Blocklist) -> Finding:
        name = blocklist.query_name(target.value)
        answer = await resolver.lookup(name, "A")
        result.lookups += 1
        result.latencies.append(answer.seconds)
        finding = interpret(blocklist, target.value, answer.outcome, answer.values)
        if finding.status is Status.LISTED:
            txt = await resolver.lookup(name, "TXT")
            result.lookups += 1
            result.latencies.append(txt.seconds)
            if txt.outcome is Outcome.ANSWER:
                finding = interpret(blocklist, target.value, answer.outcome, answer.values,
                                    " | ".join(txt.values))
        return finding

    found = await asyncio.gather(*(one(t, b) for t, b in chosen))
    result.checked = len(found)
    result.findings = (list(found) if keep is None else
                       [f for f in found if f.status is not Status.CLEAR
                        or (f.target, f.list) in keep])
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True, slots=True)
class MxAnswer:
    verdict: MxVerdict
    ttl: float
    ok: bool  # False: the lookup failed (timeout, SERVFAIL); ask again later
    seconds: float


async def resolve_mx(resolver: AsyncResolver, index: ProviderIndex,
                     domains: Sequence[str]) -> list[MxAnswer]:
    """The provider of each domain from its MX records (failed lookups: ``ok`` False)."""

    async def one(domain: str) -> MxAnswer:
        answer = await resolver.lookup(domain, "MX")
        if answer.outcome is Outcome.ANSWER:
            records = []
            for value in answer.values:
                preference, _, host = value.partition(" ")
                records.append((int(preference), host))
            return MxAnswer(classify_mx(index, domain, records), answer.ttl, True,
                            answer.seconds)
        if answer.outcome in (Outcome.NODATA, Outcome.NXDOMAIN):
            verdict = classify_mx(index, domain, [],
                                  exists=answer.outcome is Outcome.NODATA)
            return MxAnswer(verdict, 0.0, True, answer.seconds)
        return MxAnswer(MxVerdict(domain.lower(), "other", None,
                                  f"MX lookup failed ({answer.outcome.value})"),
                        0.0, False, answer.seconds)

    return list(await asyncio.gather(*(one(d) for d in domains)))
