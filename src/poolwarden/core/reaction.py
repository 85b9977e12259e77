"""Reaction rules (traffic-shaping automation): provider replies in, activations and limits out.

Modelled on KumoMTA's TSA automation (match a reply by regex, scope it, trigger
``Immediate`` or ``N/period``, act for a ``duration``) and PowerMTA's backoff mode
(back off on a reply pattern, return to normal after a while), with one addition:
after its duration an activation ramps back through cap factors (0.25 → 0.5 → full)
instead of snapping to full speed.

* ``Rule``: what to match (enhanced status code, reply text, delivery status,
  provider), the scope (provider × egress IP or provider × tenant), the trigger,
  the action (pause, cap, reroute, tier_down, alert), its duration and ramp.
* ``Observation``: one delivery attempt's reply (time, IP, provider, tenant, code,
  text), built by the service from the log ingester's deliveries and events.
* ``ReactionState.observe``: counts matches per rule and scope in a sliding window
  and returns an ``Activation`` when the trigger is reached. While an activation's
  main phase runs, further matches of the same rule and scope are not counted (mail
  queued before the pause keeps retrying from the paused IP and would otherwise
  extend the pause for ever); during its ramp-back they count and may fire again.
* ``Activation.restrictions(now)``: the ``core.shaping.Restriction`` values it puts
  on routing right now. A pause with a ramp is a PAUSE until ``until`` plus one CAP
  per ramp step ending at that step's end: ``decide()`` lets PAUSE win and the
  smallest active cap win, so the ramp steps take over one after the other without
  a new snapshot.

Pure: no clock (times come with the observations or as ``now``), no I/O.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from poolwarden.core.shaping import Restriction, RestrictionKind

ANY_PROVIDER = "*"
MAX_LINES = 20  # triggering lines kept with an activation (the newest)
MAX_LINE_TEXT = 400  # characters of a reply kept per line
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class RuleScope(StrEnum):
    IP = "ip"  # provider × egress IP: the IP's reputation at that provider
    TENANT = "tenant"  # provider × tenant: the tenant's mail (content, authentication)


class ReactionAction(StrEnum):
    PAUSE = "pause"  # no mail on that scope to that provider for the duration
    CAP = "cap"  # the daily cap of that scope for that provider × cap_factor
    REROUTE = "reroute"  # the tenant's mail to that provider goes to another pool
    TIER_DOWN = "tier_down"  # the tenant moves down one tier (never below risky)
    ALERT = "alert"  # recorded for the operator; routing unchanged


RAMPED_ACTIONS = frozenset({ReactionAction.PAUSE, ReactionAction.CAP})


@dataclass(frozen=True, slots=True)
class Rule:
    """One reaction rule, validated (``config.reaction_rules`` builds them from TOML)."""

    name: str
    provider: str  # a provider name, or ANY_PROVIDER
    action: ReactionAction
    duration: float  # seconds of the main phase
    code: re.Pattern[str] | None = None  # matched against the whole enhanced status code
    text: re.Pattern[str] | None = None  # searched in the reply text
    statuses: frozenset[str] = frozenset({"deferred", "bounced"})
    scope: RuleScope = RuleScope.IP
    threshold: int = 1  # matches needed; 1 = immediate
    period: float = 0.0  # seconds the threshold's matches must fall within
    cap_factor: float | None = None  # CAP: fraction of the normal daily cap
    pool: str | None = None  # REROUTE: the target pool
    ramp: tuple[float, ...] = ()  # cap factors after the duration, increasing, each < 1
    ramp_step: float = 0.0  # seconds each ramp factor lasts
    origin: str = ""  # "file:line" the rule came from, for explanations

    def matches(self, obs: Observation) -> bool:
        if obs.status not in self.statuses:
            return False
        if self.provider != ANY_PROVIDER and obs.provider != self.provider:
            return False
        if self.code is not None and not self.code.fullmatch(obs.enhanced_code()):
            return False
        return self.text is None or self.text.search(obs.reply) is not None

    def subject_of(self, obs: Observation) -> str | None:
        """The scope's key for this observation (its IP or tenant), None when unknown."""
        return obs.ip if self.scope is RuleScope.IP else obs.tenant

    def trigger_text(self) -> str:
        if self.threshold <= 1:
            return "immediate"
        return f"{self.threshold} in {format_duration(self.period)}"

    def match_text(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"code {self.code.pattern}")
        if self.text is not None:
            parts.append(f"text /{self.text.pattern}/")
        return " and ".join(parts)


class Observation(NamedTuple):
    """One delivery attempt's outcome with the provider's reply."""

    time: float
    provider: str
    ip: str | None
    tenant: str | None
    status: str  # deferred / bounced (sent is never observed)
    code: str | None  # the enhanced status code (Postfix's dsn=), e.g. 4.7.28
    reply: str  # the reply text as logged
    queue_id: str | None = None
    recipient: str | None = None

    def enhanced_code(self) -> str:
        if self.code:
            return self.code
        found = _ENHANCED.search(self.reply)
        return found.group(1) if found else ""

    def line(self) -> str:
        """The observation as one line for an explanation."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        reply = self.reply if len(self.reply) <= MAX_LINE_TEXT \
            else self.reply[:MAX_LINE_TEXT - 1] + "…"
        return (f"{stamp} {self.status} {self.ip or '?'}→{self.provider} "
                f"tenant={self.tenant or '?'} to=<{self.recipient or ''}> "
                f"queue={self.queue_id or '?'} dsn={self.enhanced_code() or '-'}: {reply}")


@dataclass(frozen=True, slots=True)
class Activation:
    """A rule that fired on one scope: what it does, until when, and the evidence."""

    rule: str
    action: ReactionAction
    scope: RuleScope
    provider: str
    ip: str | None  # the IP (IP scope; or the IP of the lines, for a tenant scope)
    tenant: str | None  # the tenant (tenant scope; or of the lines, when only one)
    started_at: float  # the time of the line that reached the trigger
    until: float  # end of the main phase
    steps: tuple[tuple[float, float], ...] = ()  # ramp-back: (cap factor, until) in order
    cap_factor: float | None = None
    pool: str | None = None
    matches: int = 1
    threshold: int = 1
    period: float = 0.0
    why: str = ""
    lines: tuple[str, ...] = ()
    id: int | None = None  # set on rows read back from the store
    recorded_at: float | None = None

    @property
    def subject(self) -> str:
        return (self.ip if self.scope is RuleScope.IP else self.tenant) or ""

    @property
    def key(self) -> str:
        """Idempotency key: one rule, one scope, one trigger time."""
        return (f"{self.rule}|{self.scope.value}|{self.provider}|{self.subject}|"
                f"{self.started_at:.6f}")

    @property
    def ends_at(self) -> float:
        return self.steps[-1][1] if self.steps else self.until

    def phase(self, now: float) -> str:
        """active, ramping (with the factor), or expired."""
        if now < self.until:
            return "active"
        for factor, until in self.steps:
            if now < until:
                return f"ramping ×{factor:g}"
        return "expired"

    def restrictions(self, now: float) -> list[Restriction]:
        """The limits this activation puts on routing at ``now`` (none once it ends)."""
        if now >= self.ends_at:
            return []
        ip = self.ip if self.scope is RuleScope.IP else None
        tenant = self.tenant if self.scope is RuleScope.TENANT else None
        if not (ip or tenant):
            return []
        out: list[Restriction] = []

        def add(kind: RestrictionKind, until: float, factor: float = 1.0,
                why: str = self.why) -> None:
            if until > now:
                out.append(Restriction(rule=self.rule, provider=self.provider, ip=ip,
                                       tenant=tenant, kind=kind, cap_factor=factor,
                                       pool=self.pool, until=until, why=why))

        if self.action is ReactionAction.PAUSE:
            add(RestrictionKind.PAUSE, self.until)
        elif self.action is ReactionAction.CAP:
            add(RestrictionKind.CAP, self.until, self.cap_factor or 0.0)
        elif self.action is ReactionAction.REROUTE:
            add(RestrictionKind.REROUTE, self.until)
        start = self.until
        for factor, until in self.steps:
            add(RestrictionKind.CAP, until, factor,
                f"ramping back after {self.rule}: cap ×{factor:g} from "
                f"{_clock(start)} to {_clock(until)} ({self.why})")
            start = until
        return out


def restrictions_of(activations: Iterable[Activation], now: float) -> list[Restriction]:
    out: list[Restriction] = []
    for activation in activations:
        out.extend(activation.restrictions(now))
    return out


@dataclass(slots=True)
class _Window:
    """The recent matches of one rule on one scope (at most ``threshold`` kept)."""

    matches: deque[Observation] = field(default_factory=deque)
    quiet_until: float = 0.0  # main phase of the last activation: matches not counted


class ReactionState:
    """The rules' sliding windows; feed observations in time order, get activations."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._by_provider: dict[str, tuple[Rule, ...]] = {}
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self.matched = 0  # observations that matched a rule
        self.quiet = 0  # matches not counted because their activation was running

    def _rules_for(self, provider: str) -> tuple[Rule, ...]:
        found = self._by_provider.get(provider)
        if found is None:
            found = tuple(r for r in self.rules
                          if r.provider in (provider, ANY_PROVIDER))
            self._by_provider[provider] = found
        return found

    def with_rules(self, rules: Sequence[Rule]) -> ReactionState:
        """A state for new rules (a configuration reload): the windows start empty, the
        quiet periods of rules that are still there are kept."""
        state = ReactionState(rules)
        names = {r.name for r in state.rules}
        for key, window in self._windows.items():
            if key[0] in names and window.quiet_until:
                state._windows[key] = _Window(quiet_until=window.quiet_until)
        return state

    def remember(self, activations: Iterable[Activation]) -> None:
        """Restore the quiet periods of stored activations (after a restart)."""
        for a in activations:
            window = self._windows.setdefault((a.rule, a.provider, a.subject), _Window())
            window.quiet_until = max(window.quiet_until, a.until)

    def observe_all(self, observations: Iterable[Observation]) -> list[Activation]:
        out: list[Activation] = []
        for obs in sorted(observations, key=lambda o: o.time):
            out.extend(self.observe(obs))
        return out

    def observe(self, obs: Observation) -> list[Activation]:
        out: list[Activation] = []
        for rule in self._rules_for(obs.provider):
            if not rule.matches(obs):
                continue
            subject = rule.subject_of(obs)
            if not subject:
                continue  # an IP-scoped rule cannot act without the egress IP
            self.matched += 1
            key = (rule.name, obs.provider, subject)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window()
            if obs.time < window.quiet_until:
                self.quiet += 1
                continue
            found = window.matches
            found.append(obs)
            while found and (len(found) > rule.threshold
                             or (found[0].time <= obs.time - rule.period and rule.threshold > 1)):
                found.popleft()
            if len(found) >= rule.threshold:
                activation = fire(rule, tuple(found), obs.provider)
                out.append(activation)
                found.clear()
                window.quiet_until = activation.until
        return out

    def forget_before(self, cutoff: float) -> None:
        """Drop windows with nothing newer than ``cutoff`` (memory stays bounded)."""
        stale = [k for k, w in self._windows.items()
                 if w.quiet_until < cutoff and (not w.matches or w.matches[-1].time < cutoff)]
        for key in stale:
            del self._windows[key]


def fire(rule: Rule, found: Sequence[Observation], provider: str) -> Activation:
    """The activation of ``rule`` on the scope of ``found`` (its matches, oldest first)."""
    last = found[-1]
    start = last.time
    until = start + rule.duration
    steps: list[tuple[float, float]] = []
    if rule.action in RAMPED_ACTIONS:
        end = until
        for factor in rule.ramp:
            end += rule.ramp_step
            steps.append((factor, end))
    tenants = {o.tenant for o in found if o.tenant}
    ips = {o.ip for o in found if o.ip}
    scope_text = (f"{last.ip}→{provider}" if rule.scope is RuleScope.IP
                  else f"tenant {last.tenant}→{provider}")
    span = last.time - found[0].time
    if rule.threshold <= 1:
        seen = f"1 reply matching {rule.match_text()}"
    else:
        seen = (f"{len(found)} replies matching {rule.match_text()} within "
                f"{format_duration(span)} (trigger {rule.trigger_text()})")
    why = (f"rule {rule.name}{f' ({rule.origin})' if rule.origin else ''}: {seen} on "
           f"{scope_text} → {action_text(rule, scope_text, steps, start)}")
    return Activation(
        rule=rule.name, action=rule.action, scope=rule.scope, provider=provider,
        ip=last.ip if rule.scope is RuleScope.IP or len(ips) == 1 else None,
        tenant=last.tenant if rule.scope is RuleScope.TENANT or len(tenants) == 1 else None,
        started_at=start, until=until, steps=tuple(steps), cap_factor=rule.cap_factor,
        pool=rule.pool, matches=len(found), threshold=rule.threshold, period=rule.period,
        why=why, lines=tuple(o.line() for o in found[-MAX_LINES:]))


def action_text(rule: Rule, scope_text: str, steps: Sequence[tuple[float, float]],
                start: float) -> str:
    duration = format_duration(rule.duration)
    if rule.action is ReactionAction.PAUSE:
        text = f"pause {scope_text} for {duration}"
    elif rule.action is ReactionAction.CAP:
        text = f"cap {scope_text} at ×{rule.cap_factor:g} of its daily cap for {duration}"
    elif rule.action is ReactionAction.REROUTE:
        text = f"reroute {scope_text} to pool '{rule.pool}' for {duration}"
    elif rule.action is ReactionAction.TIER_DOWN:
        text = "move the tenant down one tier (never below risky)"
    else:
        text = f"alert (routing unchanged; rule quiet for {duration})"
    if steps:
        text += ", then ramp back " + ", ".join(
            f"×{factor:g} for {format_duration(rule.ramp_step)}" for factor, _ in steps) \
            + ", then full"
    return text


# -- durations ------------------------------------------------------------------------

_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*")


def parse_duration(text: str) -> float:
    """Seconds in "90m", "2h", "1h30m", "2 hours", "hr" (one unit); ValueError otherwise."""
    value = text.strip().lower()
    if not value:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None or match.end() == pos or match.group(2) not in _UNITS:
            raise ValueError(f"'{text}' is not a duration (e.g. 30s, 90m, 2h, 1h30m, 1d)")
        if match.group(1) is None and (total or pos):
            raise ValueError(f"'{text}' is not a duration (a unit without a number)")
        number = float(match.group(1)) if match.group(1) is not None else 1.0
        total += number * _UNITS[match.group(2)]
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(at))
