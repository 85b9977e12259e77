"""The reputation engine on one node: counter deltas in, tier moves out, snapshots built.

Glue between the store and the pure core. An ``Engine`` owns a ``Ledger`` of day
counters: loaded from the store once (``Engine(config, store, now=...)``, or later by
``reconcile``), then kept in step by the counter deltas of every batch stored
(``feed``: the deltas the store reports in ``AddResult.deltas``, the same it added to
its counters, made by ``core.counters``). It evaluates every tenant's tier and records
the moves, applies operator overrides, and builds the routing snapshot. Business rules
stay in ``core``; this module only loads, calls and stores.

``poolwarden serve`` keeps one Engine for its lifetime (``services.runtime``): the log
follower, the feedback listener and the event imports feed it, so no tick rebuilds it
from the store. ``feed`` may be called from any thread (it only queues); the deltas are
applied under a lock by the next read. ``reconcile`` replaces the ledger with the
stored counters: serve runs it every ``policyd.reconcile_interval`` so that counters
written by other processes (CLI imports, other nodes on one PostgreSQL) are seen; a
batch committed in the millisecond between the start of that read and its own ``feed``
would count twice until the next reconcile. One-shot commands build an Engine once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from poolwarden.config.load import LoadedConfig
from poolwarden.core.advice import ADVICE_WINDOW_DAYS, Advice, advise
from poolwarden.core.auth import spf_denied
from poolwarden.core.blocklists import listed_ips
from poolwarden.core.counters import CounterDelta
from poolwarden.core.errors import InputError, UnknownTenantError
from poolwarden.core.events import Event, event_from_record
from poolwarden.core.model import Tenant, TenantStanding, Tier
from poolwarden.core.neighbours import NeighbourShare, rank_neighbours
from poolwarden.core.policy import RandomSource, RouteRequest, decide
from poolwarden.core.providers import ProviderIndex
from poolwarden.core.reaction import restrictions_of
from poolwarden.core.reputation import (
    ALL_PROVIDERS,
    Counts,
    Ledger,
    Metrics,
    Scope,
    metrics_of,
)
from poolwarden.core.shaping import Restriction
from poolwarden.core.snapshot import (
    Action,
    Decision,
    RoutingSettings,
    Snapshot,
    TenantLookup,
    build_snapshot,
)
from poolwarden.core.tiers import TierMove, evaluate
from poolwarden.ports import AddResult, Store
from poolwarden.services.reputation.reaction import MAX_IN_FORCE, is_promotion, promotion_held
from poolwarden.services.reputation.warmup import Warmup, counter_for

DAY = 86400


def day_of(now: float) -> int:
    return int(now // DAY)


def routing_settings(config: LoadedConfig) -> RoutingSettings:
    routing = config.settings.routing
    return RoutingSettings(
        tenant_lookup=tuple(TenantLookup(m) for m in routing.tenant_lookup),
        unknown_tenant=Action(routing.unknown_tenant),
        off_platform=Action(routing.off_platform_action),
    )


@dataclass(slots=True)
class _State:
    """What every view of one engine shares (``Engine.bound_to``): the ledger, the deltas
    fed and not yet applied, and the lock that orders them."""

    ledger: Ledger = field(default_factory=Ledger)
    pending: deque[Sequence[CounterDelta]] = field(default_factory=deque)
    lock: threading.RLock = field(default_factory=threading.RLock)
    loaded: bool = False


@dataclass(frozen=True, slots=True)
class ImportResult:
    lines: int
    added: int
    duplicates: int
    moves: tuple[TierMove, ...]


class Engine:
    """One node's reputation state over a store (see the module docstring)."""

    def __init__(self, config: LoadedConfig, store: Store, *, now: float | None) -> None:
        """``now``: load the stored counters of the retention window ending then; None: start
        empty, for ``reconcile`` to load (serve does it on its store thread)."""
        self.store = store
        self._state = _State()
        self._snapshot_version = 0
        self.reload(config)
        if now is not None:
            self.reconcile(now)

    def reload(self, config: LoadedConfig) -> None:
        """Take a new configuration; the counters stay."""
        self.config = config
        self.thresholds = config.thresholds
        self.tenants: dict[str, Tenant] = {t.name: t for t in config.inventory.tenants}
        self.providers = ProviderIndex(config.inventory.providers)
        self.retention_days = max(self.thresholds.proof_window_days, ADVICE_WINDOW_DAYS) + 1

    def bound_to(self, store: Store) -> Engine:
        """This engine over another connection to the same database (a job on its own
        thread): the same ledger and configuration, fed by what it stores."""
        view = Engine.__new__(Engine)
        view.__dict__.update(self.__dict__)
        view.store = store
        return view

    # -- counters -------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._state.loaded

    def feed(self, deltas: Sequence[CounterDelta]) -> None:
        """Counter deltas of a batch the store committed (any thread; applied by the next
        read)."""
        if deltas:
            self._state.pending.append(deltas)

    @property
    def ledger(self) -> Ledger:
        """The day counters, every delta fed so far applied."""
        state = self._state
        with state.lock:
            while state.pending:
                state.ledger.apply(state.pending.popleft())
            return state.ledger

    def reconcile(self, now: float) -> None:
        """Replace the ledger with the stored counters of the retention window."""
        state = self._state
        with state.lock:
            state.pending.clear()  # committed before they were fed: in what is read now
            ledger = Ledger()
            for row in self.store.counters(since_day=day_of(now) - self.retention_days):
                ledger.add_counts(row.scope, row.scope_id, row.provider, row.day, row.counts)
            state.ledger = ledger
            state.loaded = True

    def prune(self, now: float) -> None:
        """Forget days that left the retention window (a long-lived ledger grows otherwise)."""
        with self._state.lock:
            self.ledger.prune(day_of(now) - self.retention_days)

    # -- events ---------------------------------------------------------------

    def parse_record(self, record: Mapping[str, Any], *, source: str | None,
                     line: int | None) -> Event:
        """Validate one event record against the configuration."""
        if not isinstance(record, Mapping):
            raise InputError("an event must be a JSON object", source=source, line=line)
        tenant = record.get("tenant")
        if isinstance(tenant, str) and tenant not in self.tenants:
            raise UnknownTenantError(f"unknown tenant '{tenant}'", source=source, line=line,
                                     field="tenant")
        provider = record.get("provider")
        if provider is not None:
            if provider not in self.providers.providers:
                known = ", ".join(sorted(self.providers.providers))
                raise InputError(f"unknown provider '{provider}' (known: {known})",
                                 source=source, line=line, field="provider")
            return event_from_record(record, provider=str(provider), source=source, line=line)
        event = event_from_record(record, provider="", source=source, line=line)
        name = self.providers.for_domain(event.recipient_domain or "")
        return Event(key=event.key, time=event.time, kind=event.kind, tenant=event.tenant,
                     provider=name, ip=event.ip, sending_domain=event.sending_domain,
                     recipient_domain=event.recipient_domain, reason=event.reason)

    def add_events(self, events: Iterable[Event]) -> AddResult:
        """Store events (idempotently); the counter deltas of the new ones feed the ledger."""
        result = self.store.add_events(events)
        self.feed(result.deltas)
        return result

    # -- tiers ----------------------------------------------------------------

    def standings(self) -> dict[str, TenantStanding]:
        stored = self.store.standings()
        return {name: stored.get(name, TenantStanding(tier=t.initial_tier, since=0.0))
                for name, t in self.tenants.items()}

    def metrics(self, scope: Scope, scope_id: str, *, now: float, days: int,
                provider: str = ALL_PROVIDERS) -> Metrics:
        t = self.thresholds
        end = day_of(now)
        counts = self.ledger.window(scope, scope_id, end_day=end, days=days, provider=provider)
        return metrics_of(counts, days, bounce_floor=t.bounce_min_sample,
                          complaint_floor=t.complaint_min_sample, z=t.confidence_z,
                          active_days=self.ledger.active_days(scope, scope_id, end_day=end,
                                                              days=days))

    def evaluate(self, now: float) -> list[TierMove]:
        """Evaluate every tenant and record the moves; returns them."""
        with self._state.lock:
            self.prune(now)
            return self._evaluate(now)

    def _evaluate(self, now: float) -> list[TierMove]:
        moves = []
        for name, standing in self.standings().items():
            move = evaluate(
                name, standing.tier, since=standing.since, pinned=standing.pinned,
                window=self.metrics(Scope.TENANT, name, now=now,
                                    days=self.thresholds.window_days),
                proof_window=self.metrics(Scope.TENANT, name, now=now,
                                          days=self.thresholds.proof_window_days),
                thresholds=self.thresholds, now=now)
            if move is not None:
                moves.append(move)
        if moves:
            # a reaction rule's tier_down keeps its tenant down until the activation ends
            held = promotion_held(self.store.reaction_activations(
                active_at=now, limit=MAX_IN_FORCE), now)
            moves = [m for m in moves if not (m.tenant in held and is_promotion(m))]
        if moves:
            self.store.record_moves(moves)
        return moves

    def override(self, tenant: str, tier: Tier, *, actor: str, why: str, now: float,
                 source: str) -> TierMove:
        """Pin a tenant to a tier; recorded with who and why."""
        self._require(tenant)
        if not why.strip():
            raise InputError("an override needs a reason (--why)", field="why")
        before = self.standings()[tenant].tier
        move = TierMove(tenant=tenant, before=before, after=tier, at=now, rule="override",
                        reason=why.strip(), actor=actor, source=source, pinned=True)
        self.store.record_moves([move])
        return move

    def clear_override(self, tenant: str, *, actor: str, why: str, now: float,
                       source: str) -> None:
        self._require(tenant)
        self.store.clear_pin(tenant, actor=actor, why=why, at=now, source=source)

    def _require(self, tenant: str) -> Tenant:
        found = self.tenants.get(tenant)
        if found is None:
            raise UnknownTenantError(f"unknown tenant '{tenant}'", field="tenant")
        return found

    # -- advice, neighbours, routing ------------------------------------------

    def advice(self, tenant: str, now: float) -> Advice:
        end = day_of(now)
        # a tenant seen for fewer than 30 days is judged on the days it has been seen
        first = self.ledger.first_day(Scope.TENANT, tenant)
        days = ADVICE_WINDOW_DAYS if first is None else max(1, min(ADVICE_WINDOW_DAYS,
                                                                  end - first + 1))
        total = self.ledger.window(Scope.TENANT, tenant, end_day=end, days=days)
        per_provider = {p: self.ledger.window(Scope.TENANT, tenant, end_day=end, days=days,
                                              provider=p)
                        for p in self.ledger.providers_of(Scope.TENANT, tenant)}
        return advise(total, per_provider, self.thresholds, days=days)

    def neighbours(self, ip: str, now: float) -> list[NeighbourShare]:
        with self._state.lock:
            return self._neighbours(ip, now)

    def _neighbours(self, ip: str, now: float) -> list[NeighbourShare]:
        end, days = day_of(now), self.thresholds.window_days
        per_tenant: dict[str, Counts] = {
            tenant: self.ledger.window(Scope.IP_TENANT, f"{ip}|{tenant}", end_day=end,
                                       days=days)
            for tenant in self.ledger.tenants_on_ip(ip)}
        return rank_neighbours({k: v for k, v in per_tenant.items() if v.as_tuple() != (0,) * 6})

    def listed(self) -> dict[str, str]:
        """Egress IPs drained because a DNS blocklist lists them (``on_listing = "drain"``),
        with what the lists said."""
        if self.config.settings.monitors.on_listing != "drain":
            return {}
        return listed_ips(self.store.listings())

    def snapshot(self, now: float, *, learned: Mapping[str, str] | None = None) -> Snapshot:
        """The routing snapshot; ``learned`` is monitord's recipient domain → provider map."""
        with self._state.lock:
            return self._snapshot(now, learned)

    def _snapshot(self, now: float, learned: Mapping[str, str] | None) -> Snapshot:
        self._snapshot_version += 1
        standings = self.standings()
        auto = [name for name, t in self.tenants.items() if t.plan.value == "auto"]
        return build_snapshot(
            self.config.inventory,
            listed=self.listed(), learned_providers=learned,
            send_when_all_listed=self.config.settings.monitors.send_when_all_listed,
            tiers={name: s.tier for name, s in standings.items()},
            dedicated_advised={name: self.advice(name, now).advised for name in auto},
            restrictions=self.restrictions(now),
            settings=routing_settings(self.config), version=self._snapshot_version,
            built_at=now, caps=self.warmup().cap_plan(now), spf_denied=self.spf_denied())

    def spf_denied(self) -> dict[str, frozenset[str]]:
        """MAIL FROM domain → IPs its SPF does not authorize, as last checked (``poolwarden
        domains check``); empty unless ``routing.skip_spf_unauthorized`` is on."""
        if not self.config.settings.routing.skip_spf_unauthorized:
            return {}
        return spf_denied(f for f, _ in self.store.auth_findings())

    def warmup(self) -> Warmup:
        """Warm-up of the configured warming IPs and new domains (services.reputation.warmup)."""
        return Warmup(self.config, self.store, self.ledger)

    def advance_warmup(self, now: float) -> list[str]:
        """Judge warm-up stages up to yesterday and store them; the explanations of changes."""
        with self._state.lock:
            return [f"{s.scope} {s.scope_id} → {s.provider}: {s.why}"
                    for s in self.warmup().advance(now)]

    def restrictions(self, now: float) -> list[Restriction]:
        """The routing limits of the reaction-rule activations in force at ``now``."""
        return restrictions_of(self.store.reaction_activations(active_at=now,
                                                               limit=MAX_IN_FORCE), now)

    def route(self, request: RouteRequest, now: float,
              rng: RandomSource | None = None) -> Decision:
        if request.tenant is not None:
            self._require(request.tenant)
        counts = counter_for(self.warmup().store, now)  # today's, as the agents counted
        return decide(request, self.snapshot(now), now, rng, counts)
