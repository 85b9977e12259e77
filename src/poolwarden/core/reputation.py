"""Reputation arithmetic: day-bucketed outcome counters and rates with confidence bounds.

A ``Ledger`` holds per-day counters for every scope (tenant, egress IP, sending
domain, and tenant-on-IP for bad-neighbour attribution), per mailbox provider and
overall; it adds the counter deltas ``core.counters`` makes of events (the one
statement of which counters an event feeds). Adding is order-independent;
a rolling window is the sum of the day buckets inside it. Rates carry their
sample size and a Wilson score interval, and below an evidence floor a rate
says "insufficient data" instead of pretending to be good. Pure: the caller
supplies the day number that ends a window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from poolwarden.core.counters import (
    ALL_PROVIDERS,
    COUNT_FIELDS,
    CounterDelta,
    EventRow,
    Scope,
    counter_deltas,
    row_of,
)
from poolwarden.core.events import Event

__all__ = ["ALL_PROVIDERS", "COUNT_FIELDS", "BucketKey", "Counts", "Ledger", "Metrics", "Rate",
           "Scope", "metrics_of", "rate", "wilson_interval"]


@dataclass(slots=True)
class Counts:
    """Outcome counters for one bucket (or a sum of buckets)."""

    delivered: int = 0
    deferred: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    trap_hits: int = 0

    @property
    def volume(self) -> int:
        """Messages with a final outcome: the denominator of the bounce rate."""
        return self.delivered + self.hard_bounces + self.soft_bounces

    @property
    def attempts(self) -> int:
        """Delivery attempts including deferrals: the denominator of the deferral rate."""
        return self.volume + self.deferred

    def add(self, other: Counts) -> None:
        self.delivered += other.delivered
        self.deferred += other.deferred
        self.hard_bounces += other.hard_bounces
        self.soft_bounces += other.soft_bounces
        self.complaints += other.complaints
        self.trap_hits += other.trap_hits

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (self.delivered, self.deferred, self.hard_bounces, self.soft_bounces,
                self.complaints, self.trap_hits)


BucketKey = tuple[Scope, str, str]  # (scope, scope id, provider or "*")


class Ledger:
    """Per-day outcome counters for every scope; the in-memory reputation state."""

    __slots__ = ("_buckets", "_ip_tenants")

    def __init__(self) -> None:
        self._buckets: dict[BucketKey, dict[int, Counts]] = {}
        self._ip_tenants: dict[str, set[str]] = {}

    def add(self, event: Event) -> None:
        """Count one event: the buckets ``core.counters`` says it feeds."""
        self.apply(counter_deltas([row_of(event)]))

    def add_rows(self, rows: Sequence[EventRow]) -> None:
        """Count a batch of events given as rows."""
        self.apply(counter_deltas(rows))

    def apply(self, deltas: Iterable[CounterDelta]) -> None:
        """Add counter deltas (``core.counters.counter_deltas``, or a store's stored batch)."""
        for scope, scope_id, provider, day, *counts in deltas:
            self.add_counts(Scope(scope), scope_id, provider, day, Counts(*counts))

    def add_counts(self, scope: Scope, scope_id: str, provider: str, day: int,
                   counts: Counts) -> None:
        """Load a stored bucket (the store keeps the same buckets this ledger does)."""
        self._bucket(scope, scope_id, provider, day).add(counts)
        if scope is Scope.IP_TENANT:
            ip, tenant = scope_id.split("|", 1)
            self._ip_tenants.setdefault(ip, set()).add(tenant)

    def _bucket(self, scope: Scope, scope_id: str, provider: str, day: int) -> Counts:
        days = self._buckets.get((scope, scope_id, provider))
        if days is None:
            days = self._buckets[(scope, scope_id, provider)] = {}
        counts = days.get(day)
        if counts is None:
            counts = days[day] = Counts()
        return counts

    def window(self, scope: Scope, scope_id: str, *, end_day: int, days: int,
               provider: str = ALL_PROVIDERS) -> Counts:
        """Sum of the buckets for days ``end_day - days + 1 … end_day``."""
        total = Counts()
        by_day = self._buckets.get((scope, scope_id, provider))
        if not by_day:
            return total
        first = end_day - days + 1
        for day, counts in by_day.items():
            if first <= day <= end_day:
                total.add(counts)
        return total

    def active_days(self, scope: Scope, scope_id: str, *, end_day: int, days: int) -> int:
        """Days of the window on which the scope had at least one final outcome."""
        by_day = self._buckets.get((scope, scope_id, ALL_PROVIDERS), {})
        first = end_day - days + 1
        return sum(1 for day, c in by_day.items() if first <= day <= end_day and c.volume)

    def first_day(self, scope: Scope, scope_id: str) -> int | None:
        """The earliest day with any counted event for the scope (None if none)."""
        by_day = self._buckets.get((scope, scope_id, ALL_PROVIDERS))
        return min(by_day) if by_day else None

    def providers_of(self, scope: Scope, scope_id: str) -> list[str]:
        return sorted(p for (s, i, p) in self._buckets if s is scope and i == scope_id
                      and p != ALL_PROVIDERS)

    def tenants_on_ip(self, ip: str) -> set[str]:
        return set(self._ip_tenants.get(ip, ()))

    def daily(self, scope: Scope, scope_id: str, *, end_day: int, days: int,
              provider: str = ALL_PROVIDERS) -> list[tuple[int, Counts]]:
        """One Counts per day of the window, oldest first (empty days included)."""
        by_day = self._buckets.get((scope, scope_id, provider), {})
        return [(d, by_day.get(d, Counts())) for d in range(end_day - days + 1, end_day + 1)]

    def buckets(self) -> Iterable[tuple[Scope, str, str, int, Counts]]:
        for (scope, scope_id, provider), by_day in self._buckets.items():
            for day, counts in by_day.items():
                yield scope, scope_id, provider, day, counts

    def prune(self, before_day: int) -> None:
        """Forget buckets older than ``before_day`` (retention)."""
        for key in list(self._buckets):
            by_day = self._buckets[key]
            for day in [d for d in by_day if d < before_day]:
                del by_day[day]
            if not by_day:
                del self._buckets[key]


def wilson_interval(successes: int, trials: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # rounding can put a bound a hair past the observed rate (1e-17 for 0 of n)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass(frozen=True, slots=True)
class Rate:
    """A measured rate with its evidence: count, sample size and confidence bounds."""

    count: int
    sample: int
    floor: int  # the sample size below which the rate is not acted on
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.count / self.sample if self.sample else 0.0

    @property
    def sufficient(self) -> bool:
        return self.sample >= self.floor

    def describe(self) -> str:
        if not self.sufficient:
            return (f"insufficient data ({self.count}/{self.sample}, "
                    f"needs {self.floor} to act)")
        return (f"{self.value:.2%} ({self.count}/{self.sample}; "
                f"95% CI {self.low:.2%}–{self.high:.2%})")

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"value": round(self.value, 6), "count": self.count, "sample": self.sample,
                "floor": self.floor, "low": round(self.low, 6), "high": round(self.high, 6),
                "sufficient": self.sufficient}


def rate(count: int, sample: int, floor: int, z: float) -> Rate:
    """A rate of ``count`` in ``sample``. Complaints arrive days after their delivery, so a
    window can hold more complaints than deliveries: the count is capped at the sample."""
    count = min(count, sample)
    low, high = wilson_interval(count, sample, z)
    return Rate(count=count, sample=sample, floor=floor, low=low, high=high)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Everything the tier rules read about one scope over one window."""

    days: int
    counts: Counts
    hard_bounce_rate: Rate
    complaint_rate: Rate
    deferral_rate: Rate
    active_days: int = 0

    @property
    def volume(self) -> int:
        return self.counts.volume

    @property
    def trap_hits(self) -> int:
        return self.counts.trap_hits

    def as_dict(self) -> dict[str, object]:
        return {
            "window_days": self.days,
            "active_days": self.active_days,
            "volume": self.volume,
            "delivered": self.counts.delivered,
            "trap_hits": self.trap_hits,
            "hard_bounce_rate": self.hard_bounce_rate.as_dict(),
            "complaint_rate": self.complaint_rate.as_dict(),
            "deferral_rate": self.deferral_rate.as_dict(),
        }


def metrics_of(counts: Counts, days: int, *, bounce_floor: int, complaint_floor: int,
               z: float, active_days: int = 0) -> Metrics:
    """Rates for one window: hard bounces per final outcome, complaints per delivery."""
    return Metrics(
        days=days,
        counts=counts,
        hard_bounce_rate=rate(counts.hard_bounces, counts.volume, bounce_floor, z),
        complaint_rate=rate(counts.complaints, counts.delivered, complaint_floor, z),
        deferral_rate=rate(counts.deferred, counts.attempts, bounce_floor, z),
        active_days=active_days,
    )
