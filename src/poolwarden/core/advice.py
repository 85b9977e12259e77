"""Volume advice: does a tenant send enough for a dedicated IP to earn a reputation?

Compares the tenant's last 30 days of volume, overall and per mailbox
provider, with the floors in the thresholds (100k a month, several dozen a
day, 100 a day per provider) and says why. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poolwarden.core.reputation import Counts
from poolwarden.core.thresholds import Thresholds

ADVICE_WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class Advice:
    advised: bool
    monthly_volume: int
    daily_volume: float
    per_provider_daily: dict[str, float]
    reasons: tuple[str, ...]
    thresholds: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "dedicated IP advised" if self.advised else "dedicated IP not advised"

    def as_dict(self) -> dict[str, Any]:
        return {"advised": self.advised, "label": self.label,
                "monthly_volume": self.monthly_volume,
                "daily_volume": round(self.daily_volume, 1),
                "per_provider_daily": {k: round(v, 1) for k, v in
                                       self.per_provider_daily.items()},
                "reasons": list(self.reasons), "thresholds": self.thresholds}


def advise(total: Counts, per_provider: Mapping[str, Counts], t: Thresholds,
           days: int = ADVICE_WINDOW_DAYS) -> Advice:
    """Advice from the last ``days`` days of final outcomes (scaled to 30 days)."""
    monthly = round(total.volume * 30 / days)
    daily = total.volume / days
    provider_daily = {name: counts.volume / days for name, counts in sorted(per_provider.items())}
    reasons: list[str] = []
    advised = True
    if monthly < t.dedicated_min_monthly:
        advised = False
        reasons.append(f"{monthly:,} messages a month{_basis(days)} < dedicated_min_monthly "
                       f"{t.dedicated_min_monthly:,}: too little volume for an IP of its own "
                       "to earn a reputation")
    else:
        reasons.append(f"{monthly:,} messages a month{_basis(days)} ≥ dedicated_min_monthly "
                       f"{t.dedicated_min_monthly:,}")
    if daily < t.dedicated_min_daily:
        advised = False
        reasons.append(f"{daily:,.1f} a day < dedicated_min_daily {t.dedicated_min_daily}: "
                       "a separate IP would do more harm than good")
    thin = [f"{name} {value:,.1f}/day" for name, value in provider_daily.items()
            if value < t.provider_min_daily]
    if thin:
        reasons.append(f"below provider_min_daily {t.provider_min_daily}/day (no reputation "
                       f"data at that provider): {', '.join(thin)}")
    return Advice(advised=advised, monthly_volume=monthly, daily_volume=daily,
                  per_provider_daily=provider_daily, reasons=tuple(reasons),
                  thresholds={"dedicated_min_monthly": t.dedicated_min_monthly,
                              "dedicated_min_daily": t.dedicated_min_daily,
                              "provider_min_daily": t.provider_min_daily})


def _basis(days: int) -> str:
    return "" if days == ADVICE_WINDOW_DAYS else f" (projected from {days} days)"
