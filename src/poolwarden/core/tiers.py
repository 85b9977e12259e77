"""Tier rules: when a tenant moves down (good → risky → suspended → off-platform) or up.

Moving down reads the demotion window: a rate acts only once its sample
reaches the evidence floor; spam-trap hits act by count. Moving up needs
proof over the longer proof window: enough deliveries, both rates' upper
confidence bounds below the risky thresholds, observed rates under the
keep-under levels and no trap hit. A suspended tenant may recover to risky
after ``suspension_min_days``; off-platform is left only by an operator.
Every move is a ``TierMove`` value carrying the numbers, sample sizes and
thresholds that caused it. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from poolwarden.core.model import TIER_RANK, Tier
from poolwarden.core.reputation import Metrics
from poolwarden.core.thresholds import Thresholds

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired: which metric, its value and sample, the threshold and the tier."""

    rule: str
    tier: Tier
    metric: str
    value: float
    sample: int
    threshold: float
    threshold_name: str

    def text(self) -> str:
        if self.metric == "trap_hits":
            return (f"{int(self.value)} spam-trap hit(s) ≥ {self.threshold_name} "
                    f"{int(self.threshold)}")
        return (f"{self.metric.replace('_', ' ')} {self.value:.2%} over {self.sample} "
                f"≥ {self.threshold_name} {self.threshold:.2%}")

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "tier": self.tier.value, "metric": self.metric,
                "value": self.value, "sample": self.sample, "threshold": self.threshold,
                "threshold_name": self.threshold_name}


@dataclass(frozen=True, slots=True)
class TierMove:
    """A recorded change of tier, automatic or by an operator, with everything behind it."""

    tenant: str
    before: Tier
    after: Tier
    at: float
    rule: str
    reason: str
    actor: str = "poolwarden"
    source: str = "engine"
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False  # an override pins the tenant: no automatic move until cleared

    @property
    def automatic(self) -> bool:
        return self.source == "engine"


_LADDER = (Tier.RISKY, Tier.SUSPENDED, Tier.OFF_PLATFORM)


def findings(m: Metrics, t: Thresholds) -> list[Finding]:
    """Every demotion rule that fires on these metrics, worst first."""
    found: list[Finding] = []
    hb = m.hard_bounce_rate
    if hb.sufficient:
        for tier, name in zip(_LADDER, ("hard_bounce_risky", "hard_bounce_suspend",
                                        "hard_bounce_off_platform"), strict=True):
            limit = getattr(t, name)
            if hb.value >= limit:
                found.append(Finding(f"{name}", tier, "hard_bounce_rate", hb.value, hb.sample,
                                     limit, name))
    cr = m.complaint_rate
    if cr.sufficient:
        for tier, name in zip(_LADDER, ("complaint_risky", "complaint_suspend",
                                        "complaint_off_platform"), strict=True):
            limit = getattr(t, name)
            if cr.value >= limit:
                found.append(Finding(f"{name}", tier, "complaint_rate", cr.value, cr.sample,
                                     limit, name))
    for tier, name in zip(_LADDER, ("trap_hits_risky", "trap_hits_suspend",
                                    "trap_hits_off_platform"), strict=True):
        limit = getattr(t, name)
        if m.trap_hits >= limit:
            found.append(Finding(name, tier, "trap_hits", m.trap_hits, m.volume, limit, name))
    if not t.auto_off_platform:
        found = [f for f in found if f.tier is not Tier.OFF_PLATFORM]
    found.sort(key=lambda f: -TIER_RANK[f.tier])
    return found


def proof(m: Metrics, t: Thresholds) -> tuple[bool, list[str]]:
    """Whether the proof window shows a trustworthy sender; the reasons when it does not."""
    missing: list[str] = []
    hb, cr = m.hard_bounce_rate, m.complaint_rate
    if m.active_days < t.proof_min_active_days:
        missing.append(f"mail on {m.active_days} of the last {m.days} days, needs "
                       f"proof_min_active_days {t.proof_min_active_days}")
    if m.counts.delivered < t.complaint_min_sample:
        missing.append(f"{m.counts.delivered} deliveries in {m.days} days, needs "
                       f"complaint_min_sample {t.complaint_min_sample}")
    if hb.sample < t.bounce_min_sample:
        missing.append(f"{hb.sample} final outcomes, needs bounce_min_sample "
                       f"{t.bounce_min_sample}")
    if hb.value > t.hard_bounce_keep_under:
        missing.append(f"hard-bounce rate {hb.value:.2%} > hard_bounce_keep_under "
                       f"{t.hard_bounce_keep_under:.2%}")
    elif hb.high >= t.hard_bounce_risky:
        missing.append(f"hard-bounce upper bound {hb.high:.2%} ≥ hard_bounce_risky "
                       f"{t.hard_bounce_risky:.2%}")
    if cr.value > t.complaint_keep_under:
        missing.append(f"complaint rate {cr.value:.3%} > complaint_keep_under "
                       f"{t.complaint_keep_under:.3%}")
    elif cr.high >= t.complaint_risky:
        missing.append(f"complaint upper bound {cr.high:.3%} ≥ complaint_risky "
                       f"{t.complaint_risky:.3%}")
    if m.trap_hits:
        missing.append(f"{m.trap_hits} spam-trap hit(s) in {m.days} days")
    return (not missing), missing


def _evidence(window: Metrics, proof_window: Metrics) -> dict[str, Any]:
    return {"window": window.as_dict(), "proof_window": proof_window.as_dict()}


def _thresholds(t: Thresholds) -> dict[str, Any]:
    return t.as_dict()


def evaluate(tenant: str, current: Tier, *, since: float, pinned: bool, window: Metrics,
             proof_window: Metrics, thresholds: Thresholds, now: float) -> TierMove | None:
    """The move this tenant should make now, or None to stay where it is."""
    if pinned or current is Tier.OFF_PLATFORM:
        return None
    fired = findings(window, thresholds)
    worst = fired[0].tier if fired else None
    if worst is not None and TIER_RANK[worst] > TIER_RANK[current]:
        rule = fired[0]
        causes = "; ".join(f.text() for f in fired if f.tier is worst)
        return TierMove(tenant=tenant, before=current, after=worst, at=now, rule=rule.rule,
                        reason=f"moved down to {worst.value}: {causes} "
                               f"(last {window.days} days)",
                        metrics={**_evidence(window, proof_window),
                                 "findings": [f.as_dict() for f in fired]},
                        thresholds=_thresholds(thresholds))
    if current is Tier.SUSPENDED:
        served = (now - since) / DAY
        if served >= thresholds.suspension_min_days and (
                worst is None or TIER_RANK[worst] < TIER_RANK[Tier.SUSPENDED]):
            return TierMove(
                tenant=tenant, before=current, after=Tier.RISKY, at=now,
                rule="suspension_recovery",
                reason=(f"recovered to risky: suspended {served:.1f} days ≥ "
                        f"suspension_min_days {thresholds.suspension_min_days} and no "
                        f"suspension rule fires on the last {window.days} days"),
                metrics=_evidence(window, proof_window), thresholds=_thresholds(thresholds))
        return None
    if current in (Tier.NEW, Tier.RISKY) and worst is None:
        proven, _ = proof(proof_window, thresholds)
        if proven:
            hb, cr = proof_window.hard_bounce_rate, proof_window.complaint_rate
            return TierMove(
                tenant=tenant, before=current, after=Tier.GOOD, at=now, rule="proven",
                reason=(f"proven over the last {proof_window.days} days "
                        f"({proof_window.active_days} with mail): "
                        f"{proof_window.counts.delivered} delivered; "
                        f"hard-bounce {hb.describe()} (upper bound < "
                        f"hard_bounce_risky {thresholds.hard_bounce_risky:.2%}); complaints "
                        f"{cr.describe()} (upper bound < complaint_risky "
                        f"{thresholds.complaint_risky:.2%}); no spam-trap hits"),
                metrics=_evidence(window, proof_window), thresholds=_thresholds(thresholds))
    return None
