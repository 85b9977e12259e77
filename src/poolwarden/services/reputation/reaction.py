"""Reaction rules at work: the log ingester's deliveries in, activations stored, tenants moved.

``ReactionService(config, store).on_batch(deliveries, events)`` is the ``on_batch``
callback of ``Ingestd`` / ``import_logs`` (``services.ingest.ingestd``): it turns each
deferred or bounced delivery with its event into a ``core.reaction.Observation``
(time, egress IP, provider, tenant, enhanced status code, reply text), feeds the
rules' sliding windows (``core.reaction.ReactionState``) and stores every activation
with its triggering lines (``Store.add_reaction_activations``). Storing one moves the
store's change marker, so every routing agent rebuilds its snapshot within its
``reload_interval`` and ``Engine.snapshot`` hands the activation's restrictions to
``decide()``. A ``tier_down`` activation also records a tier move (rule
``reaction:<name>``, the activation's explanation as its reason) through
``Store.record_moves``, like the reputation engine's own moves; a pinned tenant is
left where the operator put it. ``alert`` activations are only stored: the alerts
loop polls ``Store.reaction_activations(after_id=...)``.

Activations whose whole effect (main phase and ramp) ended before now are not
stored (a backlog read after downtime must not pause anything now); they are
counted in ``stale``. Rule windows live in memory; a restart restores only the
quiet periods of stored activations. Business rules stay in ``core.reaction``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from poolwarden.config.load import LoadedConfig
from poolwarden.core.events import Event
from poolwarden.core.model import TIER_RANK, Tier
from poolwarden.core.reaction import (
    Activation,
    Observation,
    ReactionAction,
    ReactionState,
    Rule,
)
from poolwarden.core.tiers import TierMove
from poolwarden.ports import Store
from poolwarden.wire.postfix_correlate import Delivery

log = logging.getLogger("poolwarden.reaction")

OBSERVED = frozenset({"deferred", "bounced"})
MAX_IN_FORCE = 100_000  # activations read back at start; far above any real count
FORGET_AFTER = 2 * 86400.0  # windows idle this long are dropped (the longest period is 1 d)
# one tier down, never below risky: suspension stays the reputation engine's or an
# operator's call, made on rates with evidence floors, not on a provider's replies
_ONE_DOWN = {Tier.GOOD: Tier.NEW, Tier.NEW: Tier.RISKY}


def reach(rules: Sequence[Rule]) -> float:
    """How far back a reply can still matter: the longest trigger period plus the longest
    effect (duration and ramp). An older reply cannot start an activation in force now."""
    return max((r.period + r.duration + r.ramp_step * len(r.ramp) for r in rules),
               default=0.0)


def observations(deliveries: Sequence[Delivery], events: Sequence[Event], *,
                 since: float = float("-inf")) -> list[Observation]:
    """The replies worth a rule: deferred and bounced deliveries at or after ``since``,
    each with its event (``deliveries[i]`` made ``events[i]``)."""
    out: list[Observation] = []
    for d, ev in zip(deliveries, events, strict=True):
        if d.status not in OBSERVED or d.time is None or d.time < since:
            continue
        out.append(Observation(time=d.time, provider=ev.provider, ip=ev.ip, tenant=ev.tenant,
                               status=d.status, code=d.dsn, reply=d.reply or "",
                               queue_id=d.queue_id, recipient=d.recipient))
    return out


class ReactionService:
    """The rules of one configuration over one store (see the module docstring)."""

    def __init__(self, config: LoadedConfig, store: Store, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.state = ReactionState(config.reaction_rules)
        self.initial_tiers = {t.name: t.initial_tier for t in config.inventory.tenants}
        self.stored = 0  # activations stored by this service
        self.stale = 0  # activations over before they were seen (backlog)
        self.tier_moves = 0
        self._last_forget = clock()
        if self.state.rules:
            self.state.remember(store.reaction_activations(active_at=self._last_forget,
                                                           limit=MAX_IN_FORCE))

    def reload(self, config: LoadedConfig) -> None:
        """Use the rules of a reloaded configuration (SIGHUP, after it validated): windows
        start empty, quiet periods of the remaining rules carry over. One assignment swaps
        the state, so a batch in progress on another thread finishes with the old rules."""
        self.state = self.state.with_rules(config.reaction_rules)
        self.config = config
        self.initial_tiers = {t.name: t.initial_tier for t in config.inventory.tenants}
        log.info("reaction: %d rules in force after reload", len(self.state.rules))

    def on_batch(self, deliveries: Sequence[Delivery], events: Sequence[Event]) -> None:
        """The ``Ingestd`` callback (runs on the thread that stored the batch)."""
        if self.state.rules:
            # a catch-up of old logs costs next to nothing: its replies cannot matter now
            since = self.clock() - reach(self.state.rules)
            self.observe(observations(deliveries, events, since=since))

    def observe(self, found: Iterable[Observation]) -> list[Activation]:
        """Feed observations; store and apply what fires; the stored activations."""
        fired = self.state.observe_all(found)
        now = self.clock()
        if now - self._last_forget > FORGET_AFTER / 2:
            self.state.forget_before(now - FORGET_AFTER)
            self._last_forget = now
        if not fired:
            return []
        fresh = [a for a in fired if a.ends_at > now]
        self.stale += len(fired) - len(fresh)
        stored = self.store.add_reaction_activations(fresh, recorded_at=now) if fresh else []
        self.stored += len(stored)
        for activation in stored:
            log.warning("reaction: %s", activation.why)
        moves = [m for m in (self._tier_down(a, now) for a in stored
                             if a.action is ReactionAction.TIER_DOWN) if m is not None]
        if moves:
            self.store.record_moves(moves)
            self.tier_moves += len(moves)
        return stored

    def _tier_down(self, a: Activation, now: float) -> TierMove | None:
        if a.tenant is None or a.tenant not in self.initial_tiers:
            return None
        standing = self.store.standings().get(a.tenant)
        current = standing.tier if standing is not None else self.initial_tiers[a.tenant]
        if standing is not None and standing.pinned:
            log.warning("reaction: %s: tenant %s is pinned to %s by %s; not moved", a.rule,
                        a.tenant, current.value, standing.pinned_by)
            return None
        after = _ONE_DOWN.get(current)
        if after is None:
            log.info("reaction: %s: tenant %s is %s already; not moved lower by a rule",
                     a.rule, a.tenant, current.value)
            return None
        return TierMove(
            tenant=a.tenant, before=current, after=after, at=now, rule=f"reaction:{a.rule}",
            reason=f"moved down to {after.value}: {a.why}",
            metrics={"matches": a.matches, "provider": a.provider, "started_at": a.started_at,
                     "lines": list(a.lines[-5:]), "activation_id": a.id},
            thresholds={"trigger_count": a.threshold, "trigger_period_s": a.period,
                        "held_until": a.until})


def promotion_held(activations: Iterable[Activation], now: float) -> set[str]:
    """Tenants a ``tier_down`` activation keeps from moving up again until it ends."""
    return {a.tenant for a in activations
            if a.action is ReactionAction.TIER_DOWN and a.tenant and a.until > now}


def is_promotion(move: TierMove) -> bool:
    return TIER_RANK[move.after] < TIER_RANK[move.before]
