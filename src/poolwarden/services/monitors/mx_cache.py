"""The MX rollup's memory: recipient domain → provider, learned from DNS, bounded and aged.

The routing agent hands over the recipient domains it saw (``note``); a domain the
provider tables already know (gmail.com) is never looked up. Others wait in a bounded
queue (``due``) until the monitor resolves them; each answer is kept for its TTL (clamped
to ``[min_ttl, max_ttl]``) and refreshed before it expires when the domain is still being
seen (a domain nobody sends to any more is dropped when it expires). At most ``size``
domains are kept, least recently seen first out. A failed lookup keeps the previous
answer (stale beats wrong) and is retried after ``min_ttl``. ``learned()`` is what the
snapshot's provider index reads. No DNS here; clock values are arguments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from poolwarden.core.model import OTHER_PROVIDER
from poolwarden.core.providers import ProviderIndex
from poolwarden.services.monitors.checks import MxAnswer

REFRESH_MARGIN = 0.1  # refresh once 90 % of an answer's life has passed


@dataclass(slots=True)
class MxEntry:
    provider: str
    host: str | None
    how: str
    resolved_at: float
    expires: float
    seen: bool = True  # seen by the agent since it was last resolved
    failed: bool = False


class MxCache:
    def __init__(self, *, size: int = 100_000, queue_size: int = 10_000,
                 min_ttl: float = 60.0, max_ttl: float = 86400.0) -> None:
        self.size = size
        self.queue_size = queue_size
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.entries: OrderedDict[str, MxEntry] = OrderedDict()
        self.queue: dict[str, None] = {}  # insertion-ordered set
        self.version = 0  # moves when learned() changes
        self.dropped = 0  # domains not queued because the queue was full
        # domain -> provider for every entry at a known provider, kept as entries change
        # so that publishing it is one C-level dict copy, not a pass over the cache
        self._learned: dict[str, str] = {}

    def note(self, domains: Iterable[str], index: ProviderIndex) -> None:
        """Domains the agent routed mail to; unknown ones are queued for resolution."""
        for raw in domains:
            domain = raw.lower().rstrip(".")
            if not domain or "." not in domain:
                continue
            entry = self.entries.get(domain)
            if entry is not None:
                entry.seen = True
                self.entries.move_to_end(domain)
                continue
            if domain in self.queue or index.for_domain(domain) != OTHER_PROVIDER:
                continue  # the provider tables know it: no DNS needed
            if len(self.queue) >= self.queue_size:
                self.dropped += 1
                continue
            self.queue[domain] = None

    def due(self, now: float, limit: int) -> list[str]:
        """Domains to resolve now: new ones first, then answers about to expire."""
        out = list(self.queue)[:limit]
        for domain in out:
            del self.queue[domain]
        if len(out) >= limit:
            return out
        expired = []
        for domain, entry in self.entries.items():
            life = entry.expires - entry.resolved_at
            if now >= entry.expires - life * REFRESH_MARGIN:
                expired.append(domain)
        for domain in expired:
            entry = self.entries[domain]
            if entry.seen:
                if len(out) < limit:
                    out.append(domain)
            elif now >= entry.expires:
                self._drop(domain)  # nobody sends there any more
        return out

    def store(self, answers: Iterable[MxAnswer], now: float) -> None:
        for answer in answers:
            verdict = answer.verdict
            old = self.entries.get(verdict.domain)
            if not answer.ok:
                if old is not None:  # keep the last good answer, try again later
                    old.expires = now + self.min_ttl
                    old.resolved_at = now
                    old.failed = True
                    old.seen = False
                else:
                    self.entries[verdict.domain] = MxEntry(
                        OTHER_PROVIDER, None, verdict.how, now, now + self.min_ttl,
                        seen=True, failed=True)
                continue
            ttl = min(self.max_ttl, max(self.min_ttl, answer.ttl))
            if old is None or old.provider != verdict.provider:
                self.version += 1
                if verdict.provider != OTHER_PROVIDER:
                    self._learned[verdict.domain] = verdict.provider
                else:
                    self._learned.pop(verdict.domain, None)
            self.entries[verdict.domain] = MxEntry(verdict.provider, verdict.host, verdict.how,
                                                   now, now + ttl, seen=False)
            self.entries.move_to_end(verdict.domain)
        while len(self.entries) > self.size:
            self._drop(next(iter(self.entries)))

    def _drop(self, domain: str) -> None:
        entry = self.entries.pop(domain)
        if entry.provider != OTHER_PROVIDER:
            self.version += 1
            self._learned.pop(domain, None)

    def learned(self) -> dict[str, str]:
        return dict(self._learned)

    def explain(self, domain: str) -> MxEntry | None:
        return self.entries.get(domain.lower().rstrip("."))
