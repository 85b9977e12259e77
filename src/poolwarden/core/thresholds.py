"""Reputation thresholds and evidence floors: declared once, with defaults, bounds and sources.

The configuration layer builds its validated settings from these fields, and
``poolwarden config defaults`` prints them; every explanation of a tier move
names the threshold it used by the field name below. Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def setting(default: Any, help: str, *, ge: float | None = None, le: float | None = None,
            source: str = "") -> Any:
    return field(default=default, metadata={"help": help, "ge": ge, "le": le, "source": source})


@dataclass(frozen=True, slots=True)
class Thresholds:
    window_days: int = setting(
        7, "Days of events the demotion rules look at.", ge=1, le=90)
    proof_window_days: int = setting(
        30, "Days of events a tenant must be proven over before it is trusted (graduation, "
        "promotion to good).", ge=1, le=90)
    proof_min_active_days: int = setting(
        7, "Days with mail in the proof window before a tenant can be proven: one good day "
        "is not a history.", ge=1, le=90)
    confidence_z: float = setting(
        1.96, "z-score of the Wilson interval reported with every rate (1.96 = 95 %).",
        ge=0.5, le=4.0)
    bounce_min_sample: int = setting(
        200, "Minimum final outcomes in the window before a bounce rate is acted on.",
        ge=1, le=10_000_000, source="inbound PR #177 (third-party)")
    complaint_min_sample: int = setting(
        1000, "Minimum deliveries in the window before a complaint rate is acted on.",
        ge=1, le=10_000_000, source="inbound PR #177 (third-party)")
    hard_bounce_keep_under: float = setting(
        0.02, "Hard-bounce rate a good tenant stays under (promotion needs it).",
        ge=0.0, le=1.0, source="Amazon SES (recommended 2 %)")
    hard_bounce_risky: float = setting(
        0.05, "Hard-bounce rate that moves a tenant to risky.", ge=0.0, le=1.0,
        source="Amazon SES (review at 5 %)")
    hard_bounce_suspend: float = setting(
        0.10, "Hard-bounce rate that suspends a tenant (mail held).", ge=0.0, le=1.0,
        source="Amazon SES (pause at 10 %)")
    hard_bounce_off_platform: float = setting(
        0.25, "Hard-bounce rate that takes a tenant off the platform (mail refused).",
        ge=0.0, le=1.0)
    complaint_keep_under: float = setting(
        0.001, "Complaint rate a good tenant stays under (promotion needs it).",
        ge=0.0, le=1.0, source="Google sender guidelines (keep under 0.10 %)")
    complaint_risky: float = setting(
        0.003, "Complaint rate that moves a tenant to risky.", ge=0.0, le=1.0,
        source="Google / Yahoo (act at 0.3 %)")
    complaint_suspend: float = setting(
        0.005, "Complaint rate that suspends a tenant.", ge=0.0, le=1.0,
        source="Amazon SES (pause at 0.5 %)")
    complaint_off_platform: float = setting(
        0.02, "Complaint rate that takes a tenant off the platform.", ge=0.0, le=1.0)
    trap_hits_risky: int = setting(
        1, "Spam-trap hits in the window that move a tenant to risky (counted, not a rate: "
        "any pristine-trap hit is serious).", ge=1, le=1_000_000,
        source="Spamhaus / SNDS practice")
    trap_hits_suspend: int = setting(
        3, "Spam-trap hits in the window that suspend a tenant.", ge=1, le=1_000_000)
    trap_hits_off_platform: int = setting(
        20, "Spam-trap hits in the window that take a tenant off the platform.",
        ge=1, le=1_000_000)
    auto_off_platform: bool = setting(
        True, "Whether the engine may take a tenant off the platform by itself; when false, "
        "the worst tier it reaches on its own is suspended.")
    suspension_min_days: int = setting(
        7, "Days a suspended tenant stays suspended before it may recover to risky.",
        ge=0, le=365, source="Gmail: eligible for mitigation after 7 days under 0.3 %")
    dedicated_min_monthly: int = setting(
        100_000, "Monthly volume below which a dedicated IP cannot earn a reputation.",
        ge=0, le=10_000_000_000,
        source="hosting guide on shared vs dedicated IPs: volume builds a reputation")
    dedicated_min_daily: int = setting(
        50, "Daily volume floor ('several dozen a day') below which a dedicated IP does "
        "more harm than good.", ge=0, le=100_000_000,
        source="hosting guide on private SMTP routing: 'several dozen e-mail per day'")
    provider_min_daily: int = setting(
        100, "Daily volume to one provider below which that provider shows no data for "
        "the IP.", ge=0, le=100_000_000, source="Microsoft SNDS (third-party quote)")

    def __post_init__(self) -> None:
        problems = validate_thresholds(self.as_dict())
        if problems:
            raise ValueError("; ".join(f"{name}: {text}" for name, text in problems))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def validate_thresholds(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Range and ordering checks of threshold values by name: (field name, problem) pairs,
    empty when all is well. Names missing from ``values`` take their defaults."""
    problems: list[tuple[str, str]] = []
    defaults = {f.name: f.default for f in fields(Thresholds)}

    def get(name: str) -> Any:
        return values.get(name, defaults[name])

    for f in fields(Thresholds):
        value = get(f.name)
        ge, le = f.metadata.get("ge"), f.metadata.get("le")
        if isinstance(value, bool):
            continue
        if ge is not None and value < ge:
            problems.append((f.name, f"{value} is below the minimum {ge}"))
        if le is not None and value > le:
            problems.append((f.name, f"{value} is above the maximum {le}"))
    for metric in ("hard_bounce", "complaint"):
        ladder = [f"{metric}_keep_under", f"{metric}_risky", f"{metric}_suspend",
                  f"{metric}_off_platform"]
        ladder_values = [get(name) for name in ladder]
        if ladder_values != sorted(ladder_values):
            problems.append((ladder[0], f"{', '.join(ladder)} must not decrease "
                             f"(got {ladder_values})"))
    traps = [get("trap_hits_risky"), get("trap_hits_suspend"), get("trap_hits_off_platform")]
    if traps != sorted(traps):
        problems.append(("trap_hits_risky", "trap_hits_risky, trap_hits_suspend, "
                         f"trap_hits_off_platform must not decrease (got {traps})"))
    return problems
