"""Warm-up on one node: which IPs and domains warm, their stages, today's caps and counts.

Glue between the configuration, the store and the pure ``core.warmup``: finds
the warming egress IPs (state ``warming``) and the tenants' new domains
(``warmup_domains``), judges their past days from the ledger's per-provider
outcomes and the stored routed counts (``advance``), stores the new stages,
and turns the stages into the snapshot's ``CapPlan``. Also the read model of
``poolwarden ip show``. No business rules here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from poolwarden.config.load import LoadedConfig
from poolwarden.core.caps import OVERFLOW_DEFER, Cap, CapCounter, CapPlan
from poolwarden.core.model import OTHER_PROVIDER, IpState
from poolwarden.core.reputation import Counts, Ledger, Scope
from poolwarden.core.warmup import (
    DayOutcome,
    Schedule,
    WarmupScope,
    WarmupSettings,
    WarmupState,
    advance,
    new_state,
)
from poolwarden.ports import WarmupStore

DAY = 86400


def today_of(now: float) -> int:
    return int(now // DAY)


@dataclass(frozen=True, slots=True)
class Target:
    """One thing that warms: a warming IP or a tenant's new sending domain."""

    scope: str
    scope_id: str
    schedule: Schedule
    tenant: str | None = None  # the domain's tenant


def warmup_settings(config: LoadedConfig) -> WarmupSettings:
    w = config.settings.warmup
    t = config.thresholds
    return WarmupSettings(advance_fraction=w.advance_fraction,
                          idle_restart_days=w.idle_restart_days, baseline_days=w.baseline_days,
                          confidence_z=t.confidence_z,
                          hard_bounce_keep_under=t.hard_bounce_keep_under,
                          complaint_keep_under=t.complaint_keep_under,
                          min_sample=t.provider_min_daily)


class Warmup:
    """The warm-up of one configuration over one store and ledger."""

    def __init__(self, config: LoadedConfig, store: WarmupStore, ledger: Ledger) -> None:
        self.config = config
        self.store = store
        self.ledger = ledger
        self.settings = warmup_settings(config)
        self.schedules = {s.name: s for s in config.warmup_schedules}
        names = [p.name for p in config.inventory.providers]
        self.providers = tuple(names + ([OTHER_PROVIDER] if OTHER_PROVIDER not in names
                                        else []))
        self.targets = self._targets()

    def _targets(self) -> list[Target]:
        if not self.schedules:
            return []
        warmup = self.config.settings.warmup
        out: list[Target] = []
        for declared, ip in zip(self.config.settings.ips, self.config.inventory.ips,
                                strict=True):
            if ip.state is IpState.WARMING:
                name = declared.warmup_schedule or warmup.ip_schedule
                out.append(Target(WarmupScope.IP, ip.address, self.schedules[name]))
        for tenant in self.config.settings.tenants:
            for domain in tenant.warmup_domains:
                out.append(Target(WarmupScope.DOMAIN, domain.strip().lower().rstrip("."),
                                  self.schedules[warmup.domain_schedule], tenant.name))
        return out

    # -- state ------------------------------------------------------------------

    def states(self, now: float) -> dict[tuple[str, str, str], WarmupState]:
        """The state of every target × provider: stored, or a fresh stage 1 of today."""
        stored = {(s.scope, s.scope_id, s.provider): s for s in self.store.warmup_states()}
        today = today_of(now)
        out: dict[tuple[str, str, str], WarmupState] = {}
        for target in self.targets:
            for provider in self.providers:
                key = (target.scope, target.scope_id, provider)
                state = stored.get(key)
                if state is None:
                    state = new_state(target.scope, target.scope_id, provider, target.schedule,
                                      today)
                elif state.schedule != target.schedule.name:  # the operator changed it
                    state = replace(state, schedule=target.schedule.name,
                                    why=f"schedule changed to '{target.schedule.name}', "
                                    "stage kept")
                out[key] = state
        return out

    def advance(self, now: float) -> list[WarmupState]:
        """Judge the complete days since the last judgement; store and return the changes."""
        today = today_of(now)
        routed: dict[int, Mapping[tuple[str, str, str], int]] = {}

        def routed_on(day: int) -> Mapping[tuple[str, str, str], int]:
            if day not in routed:
                routed[day] = self.store.warmup_counts(day)
            return routed[day]

        schedules = {t.scope_id: t.schedule for t in self.targets}
        stored = {(s.scope, s.scope_id, s.provider) for s in self.store.warmup_states()}
        changed = []
        for key, state in self.states(now).items():
            scope, scope_id, provider = key
            ledger_scope = Scope.IP if scope == WarmupScope.IP else Scope.DOMAIN

            def outcome(day: int, _s: Scope = ledger_scope, _i: str = scope_id,
                        _p: str = provider, _scope: str = scope) -> DayOutcome:
                counts = self.ledger.window(_s, _i, end_day=day, days=1, provider=_p)
                return DayOutcome(counts, routed_on(day).get((_scope, _i, _p), 0))

            def baseline(day: int, _s: Scope = ledger_scope, _i: str = scope_id,
                         _p: str = provider) -> Counts:
                return self.ledger.window(_s, _i, end_day=day - 1,
                                          days=self.settings.baseline_days, provider=_p)

            new = advance(state, schedules[scope_id], today=today, outcome=outcome,
                          baseline=baseline, settings=self.settings)
            if new != state or key not in stored:
                changed.append(new)
        if changed:
            self.store.save_warmup_states(changed, at=now)
        return changed

    # -- caps -------------------------------------------------------------------

    def cap_plan(self, now: float) -> CapPlan:
        """Today's caps per (ip, provider) and (domain, provider), for the snapshot."""
        today = today_of(now)
        ip_caps: dict[tuple[str, str], Cap] = {}
        domain_caps: dict[tuple[str, str], Cap] = {}
        schedules = {t.scope_id: t.schedule for t in self.targets}
        for (scope, scope_id, provider), state in self.states(now).items():
            schedule = schedules[scope_id]
            limit = schedule.cap(state.stage, provider)
            if limit is None:
                continue
            what = "IP" if scope == WarmupScope.IP else "new domain"
            cap = Cap(limit, f"{what} {scope_id} → {provider}: warm-up stage {state.stage + 1} "
                      f"of {schedule.stages} of '{schedule.name}' (day {state.day(today)}), "
                      f"cap {limit:,} a day")
            (ip_caps if scope == WarmupScope.IP else domain_caps)[(scope_id, provider)] = cap
        default = self.schedules.get(self.config.settings.warmup.ip_schedule)
        full = {p: default.full_cap(p) for p in self.providers} if default else {}
        overflow = {t.name: t.warmup_overflow for t in self.config.settings.tenants
                    if t.warmup_overflow == OVERFLOW_DEFER}
        return CapPlan(ip_caps=ip_caps, domain_caps=domain_caps, full_caps=full,
                       overflow=overflow)

    # -- read model -------------------------------------------------------------

    def ip_detail(self, address: str, now: float) -> dict[str, Any] | None:
        """The ``warmup`` object of ``poolwarden ip show``; None when the IP is not warming."""
        target = next((t for t in self.targets
                       if t.scope == WarmupScope.IP and t.scope_id == address), None)
        if target is None:
            return None
        today = today_of(now)
        states = {k[2]: s for k, s in self.states(now).items()
                  if k[0] == WarmupScope.IP and k[1] == address}
        counts = self.store.warmup_counts(today)
        schedule = target.schedule
        caps = {p: schedule.cap(s.stage, p) for p, s in states.items()}
        first = min(states.values(), key=lambda s: s.stage)
        return {
            "schedule": schedule.name, "source": schedule.source,
            "stage": first.stage + 1, "stages_total": schedule.stages,
            "day": max(s.day(today) for s in states.values()),
            "caps": caps,
            "counts": {p: counts.get((WarmupScope.IP, address, p), 0) for p in states},
            "stages": {p: s.stage + 1 for p, s in states.items()},
            "why": {p: s.why for p, s in states.items()},
            "advance_fraction": self.settings.advance_fraction,
            "idle_restart_days": self.settings.idle_restart_days,
        }


def counter_for(store: WarmupStore, now: float) -> CapCounter:
    """A counter holding every node's stored counts of today (a restart resumes from it)."""
    counter = CapCounter(today_of(now))
    counter.merge(counter.day, store.warmup_counts(counter.day))
    return counter


def flush_counts(store: WarmupStore, batches: list[tuple[int, dict[tuple[str, str, str], int]]],
                 today: int) -> dict[tuple[str, str, str], int]:
    """Write an agent's unflushed counts (store thread); every node's totals of ``today``."""
    for day, rows in batches:
        store.add_warmup_counts(day, rows)
    return store.warmup_counts(today)
