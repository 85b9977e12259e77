"""Chart data for the dashboard: per-day rates and volumes from the engine's day counters.

The tenant and IP pages embed these series as JSON; the browser only draws
them (Chart.js), it computes nothing. A day without a denominator has no rate
(``None``: a gap in the line), never a fake 0 %. Rates are fractions, the page
formats them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from poolwarden.core.reputation import ALL_PROVIDERS, Counts, Scope
from poolwarden.services.reputation.engine import DAY, Engine, day_of

CHART_DAYS = 30  # the proof window's default length: what a promotion reads


def _ratio(part: int, whole: int) -> float | None:
    # complaints can outnumber a day's deliveries (they arrive days later): cap at 100 %
    return round(min(part, whole) / whole, 6) if whole else None


def _day_point(counts: Counts) -> dict[str, float | int | None]:
    return {
        "volume": counts.volume,
        "hard_bounce_rate": _ratio(counts.hard_bounces, counts.volume),
        "complaint_rate": _ratio(counts.complaints, counts.delivered),
        "deferral_rate": _ratio(counts.deferred, counts.attempts),
        "trap_hits": counts.trap_hits,
    }


SIGNALS = ("hard_bounce_rate", "complaint_rate", "deferral_rate", "trap_hits", "volume")


def daily_series(engine: Engine, scope: Scope, scope_id: str, *, now: float,
                 days: int = CHART_DAYS) -> dict[str, Any]:
    """``{"days": [...], "providers": {name: {signal: [values per day]}}}``; the overall
    line is under the provider name ``"all"``."""
    end = day_of(now)
    names = [ALL_PROVIDERS, *engine.ledger.providers_of(scope, scope_id)]
    labels = [_iso_day(d) for d in range(end - days + 1, end + 1)]
    providers: dict[str, dict[str, list[float | int | None]]] = {}
    for name in names:
        points = [_day_point(c) for _, c in engine.ledger.daily(
            scope, scope_id, end_day=end, days=days, provider=name)]
        providers["all" if name == ALL_PROVIDERS else name] = {
            signal: [p[signal] for p in points] for signal in SIGNALS}
    return {"days": labels, "providers": providers}


def _iso_day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * DAY, dt.UTC).strftime("%Y-%m-%d")
