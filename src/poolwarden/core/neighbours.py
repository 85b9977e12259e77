"""Bad-neighbour attribution: who caused a shared IP's bounces, complaints and trap hits.

For one IP and window, each tenant's share of the IP's hard bounces,
complaints and spam-trap hits, and a harm score that weighs them (traps 3,
complaints 2, bounces 1, over the signals the IP actually has), worst first. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from poolwarden.core.reputation import Counts

WEIGHTS = {"trap_hits": 3.0, "complaints": 2.0, "hard_bounces": 1.0}


@dataclass(frozen=True, slots=True)
class NeighbourShare:
    tenant: str
    volume: int
    hard_bounces: int
    complaints: int
    trap_hits: int
    bounce_share: float
    complaint_share: float
    trap_share: float
    harm: float

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "volume": self.volume,
                "hard_bounces": self.hard_bounces, "complaints": self.complaints,
                "trap_hits": self.trap_hits, "bounce_share": round(self.bounce_share, 4),
                "complaint_share": round(self.complaint_share, 4),
                "trap_share": round(self.trap_share, 4), "harm": round(self.harm, 4)}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def rank_neighbours(per_tenant: Mapping[str, Counts]) -> list[NeighbourShare]:
    """Each tenant's share of the IP's bad signals, worst first (ties by name)."""
    totals = Counts()
    for counts in per_tenant.values():
        totals.add(counts)
    weight_sum = sum(w for name, w in WEIGHTS.items() if getattr(totals, name))
    rows = []
    for tenant, c in per_tenant.items():
        shares = {
            "hard_bounces": _share(c.hard_bounces, totals.hard_bounces),
            "complaints": _share(c.complaints, totals.complaints),
            "trap_hits": _share(c.trap_hits, totals.trap_hits),
        }
        harm = (sum(WEIGHTS[k] * v for k, v in shares.items()) / weight_sum
                if weight_sum else 0.0)
        rows.append(NeighbourShare(
            tenant=tenant, volume=c.volume, hard_bounces=c.hard_bounces,
            complaints=c.complaints, trap_hits=c.trap_hits,
            bounce_share=shares["hard_bounces"], complaint_share=shares["complaints"],
            trap_share=shares["trap_hits"], harm=harm))
    rows.sort(key=lambda r: (-r.harm, -r.volume, r.tenant))
    return rows
