"""Warm-up schedules and their progress: daily caps per mailbox provider, stage by stage.

A ``Schedule`` is data (TOML, read by ``config.warmup_files``): for each provider
a list of daily caps, one per stage. An egress IP in state ``warming`` (and,
separately, a tenant's new sending domain) walks its schedule **per provider**:
the reputation being built is the one that provider keeps for the IP.

``advance()`` judges the days since the last judgement, one complete UTC day
at a time (SparkPost's rule, NUMBERS.md):

* a stage advances only when the day delivered more than ``advance_fraction``
  (90 %) of the stage's cap *and* the IP's reputation at that provider is not
  deteriorating (``deterioration()``);
* otherwise the stage holds (a stalled stage holds however long it stalls);
* after ``idle_restart_days`` (30, SendGrid) without any traffic to the
  provider the warm-up starts again at the first stage.

Every step carries an explanation with its numbers. Pure: days and counts
are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from poolwarden.core.model import OTHER_PROVIDER
from poolwarden.core.reputation import Counts, wilson_interval

WARMUP_PROVIDERS = ("google", "microsoft", "yahoo", "apple", OTHER_PROVIDER)


class WarmupScope:
    """What warms: an egress IP, or a tenant's new sending domain."""

    IP = "ip"
    DOMAIN = "domain"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Daily caps per provider, one per stage; providers not listed use ``other``'s."""

    name: str
    caps: Mapping[str, tuple[int, ...]]
    source: str = ""
    file: str = ""

    @property
    def stages(self) -> int:
        return len(self.caps[OTHER_PROVIDER])

    def cap(self, stage: int, provider: str) -> int | None:
        """The daily cap at 0-based ``stage``; None once the schedule is complete."""
        caps = self.caps.get(provider) or self.caps[OTHER_PROVIDER]
        return caps[stage] if 0 <= stage < len(caps) else None

    def full_cap(self, provider: str) -> int:
        """The last stage's cap: the provider's daily volume of a warmed address."""
        caps = self.caps.get(provider) or self.caps[OTHER_PROVIDER]
        return caps[-1]


Problem = tuple[tuple[str | int, ...], str]  # (path inside the file, message)


def parse_schedule(data: Mapping[str, object], *, name: str, known_providers: Sequence[str],
                   file: str = "") -> tuple[Schedule | None, list[Problem]]:
    """A schedule from a parsed TOML table, or the problems (path, message) that stop it.

    Format: ``name`` (optional, defaults to ``name``), ``source`` (text), and a
    ``[caps]`` table mapping each provider to its list of daily caps, one per
    stage; ``other`` is required and every list has the same number of stages.
    """
    problems: list[Problem] = []
    for key in data:
        if key not in ("name", "source", "description", "caps"):
            problems.append(((key,), f"unknown key '{key}' (known: name, source, description, "
                             "caps)"))
    declared = data.get("name", name)
    if not isinstance(declared, str) or not declared.strip():
        problems.append((("name",), "must be a non-empty string"))
        declared = name
    source = data.get("source", "")
    if not isinstance(source, str):
        problems.append((("source",), "must be a string"))
        source = ""
    caps_table = data.get("caps")
    if not isinstance(caps_table, Mapping) or not caps_table:
        problems.append((("caps",), "a [caps] table is required: provider = [daily cap per "
                         "stage, ...]"))
        return None, problems
    caps: dict[str, tuple[int, ...]] = {}
    for provider, values in caps_table.items():
        path: tuple[str | int, ...] = ("caps", provider)
        if provider not in known_providers:
            problems.append((path, f"unknown provider '{provider}' (known: "
                             f"{', '.join(known_providers)})"))
            continue
        if not isinstance(values, list) or not values:
            problems.append((path, "must be a non-empty list of daily caps, one per stage"))
            continue
        good = True
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append((path, f"stage {i + 1}: a cap must be a whole number "
                                 f"(got {value!r})"))
                good = False
            elif value < 0:
                problems.append((path, f"stage {i + 1}: negative cap {value}"))
                good = False
            elif i and isinstance(values[i - 1], int) and value < values[i - 1]:
                problems.append((path, f"the schedule decreases: stage {i + 1} ({value:,}) is "
                                 f"below stage {i} ({values[i - 1]:,})"))
                good = False
        if good:
            caps[str(provider)] = tuple(values)
    if OTHER_PROVIDER not in caps_table:
        problems.append((("caps",), f"'{OTHER_PROVIDER}' is required: it caps every provider "
                         "the schedule does not list"))
    lengths = {p: len(v) for p, v in caps.items()}
    if len(set(lengths.values())) > 1:
        for provider, n in lengths.items():
            if n != lengths.get(OTHER_PROVIDER, n):
                problems.append((("caps", provider), f"{n} stages, but '{OTHER_PROVIDER}' has "
                                 f"{lengths[OTHER_PROVIDER]}: every provider needs the same "
                                 "number of stages"))
    if problems:
        return None, problems
    return Schedule(name=declared, caps=caps, source=source, file=file), []


@dataclass(frozen=True, slots=True)
class WarmupSettings:
    """How stages advance (``[warmup]`` in the configuration)."""

    advance_fraction: float = 0.9  # SparkPost: advance only if > 90 % of the target delivered
    idle_restart_days: int = 30  # SendGrid: idle > 30 days → warm again
    baseline_days: int = 7  # days before the judged day that its rates are compared with
    confidence_z: float = 1.96
    hard_bounce_keep_under: float = 0.02  # Amazon SES recommended
    complaint_keep_under: float = 0.001  # Google sender guidelines
    min_sample: int = 100  # a day's outcomes at a provider below which its rates prove nothing


HELD = " held:"  # marks the explanation of a day that did not advance the stage


@dataclass(frozen=True, slots=True)
class WarmupState:
    """Where one (scope, id) stands with one provider."""

    scope: str  # WarmupScope.IP or .DOMAIN
    scope_id: str
    provider: str
    schedule: str
    stage: int = 0  # 0-based
    started_day: int = 0
    stage_day: int = 0  # the first day of the current stage
    judged_day: int = -1  # the last complete day judged
    last_active_day: int | None = None
    why: str = ""

    def day(self, today: int) -> int:
        """1-based day of the warm-up (today counts)."""
        return today - self.started_day + 1

    @property
    def held(self) -> bool:
        """Whether the last day judged was active and did not advance the stage."""
        return HELD in self.why


def new_state(scope: str, scope_id: str, provider: str, schedule: Schedule,
              today: int) -> WarmupState:
    return WarmupState(scope, scope_id, provider, schedule.name, 0, today, today, today - 1,
                       None, f"warm-up started on schedule '{schedule.name}' at stage 1")


@dataclass(frozen=True, slots=True)
class DayOutcome:
    """What one day brought for the scope at the provider (from the ledger and the agent)."""

    counts: Counts  # delivery outcomes of the day (ledger)
    routed: int = 0  # recipients the agent routed (warm-up counters)

    @property
    def active(self) -> bool:
        return self.routed > 0 or self.counts.attempts > 0 or self.counts.complaints > 0


def deterioration(day: Counts, baseline: Counts, settings: WarmupSettings) -> str | None:
    """Why the reputation at a provider is deteriorating on ``day``, or None.

    Deteriorating means the day's outcomes at that provider are *significantly*
    worse, not just noisier: a spam-trap hit; a hard-bounce or complaint rate whose
    lower confidence bound is above the keep-under level (2 %, 0.1 %); or a
    deferral or hard-bounce rate whose lower bound is above the upper bound of the
    same rate over the ``baseline_days`` before (the provider pushing back harder
    than it did). Wilson 95 % bounds, and no rate of a day with fewer than
    ``min_sample`` outcomes (the provider_min_daily threshold) is judged: a handful
    of messages proves nothing.
    """
    z = settings.confidence_z
    if day.trap_hits:
        return f"{day.trap_hits} spam-trap hit(s)"
    if day.attempts < settings.min_sample:
        return None
    checks = (("hard-bounce rate", day.hard_bounces, day.volume, settings.hard_bounce_keep_under),
              ("complaint rate", day.complaints, day.delivered, settings.complaint_keep_under))
    for label, count, sample, level in checks:
        low, _ = wilson_interval(min(count, sample), sample, z)
        if sample and low > level:
            return (f"{label} {count}/{sample} = {count / sample:.2%} (lower bound {low:.2%}) "
                    f"above the keep-under level {level:.2%}")
    trends = (("deferral rate", day.deferred, day.attempts, baseline.deferred,
               baseline.attempts),
              ("hard-bounce rate", day.hard_bounces, day.volume, baseline.hard_bounces,
               baseline.volume))
    for label, count, sample, base_count, base_sample in trends:
        if not sample or not base_sample:
            continue
        low, _ = wilson_interval(count, sample, z)
        _, base_high = wilson_interval(min(base_count, base_sample), base_sample, z)
        if low > base_high:
            return (f"{label} rose to {count}/{sample} = {count / sample:.2%} (lower bound "
                    f"{low:.2%}) from {base_count}/{base_sample} = "
                    f"{base_count / base_sample:.2%} over the {settings.baseline_days} days "
                    f"before (upper bound {base_high:.2%})")
    return None


def advance(state: WarmupState, schedule: Schedule, *, today: int,
            outcome: Callable[[int], DayOutcome], baseline: Callable[[int], Counts],
            settings: WarmupSettings) -> WarmupState:
    """Judge every complete day after ``state.judged_day`` up to yesterday; the new state.

    ``outcome(day)`` is what that day brought at the provider, ``baseline(day)`` the
    summed outcomes of the ``baseline_days`` before it. Idempotent: a state already
    judged up to yesterday comes back unchanged.
    """
    current = state
    for day in range(max(current.judged_day + 1, today - 366), today):
        current = _judge(current, schedule, day, outcome(day), baseline, settings)
    last = current.last_active_day if current.last_active_day is not None \
        else current.started_day
    idle = today - last - 1  # complete days without traffic since the last active one
    if idle >= settings.idle_restart_days and (current.stage > 0
                                               or current.last_active_day is not None):
        current = replace(current, stage=0, started_day=today, stage_day=today,
                          last_active_day=None,
                          why=f"idle for {idle} days (≥ {settings.idle_restart_days}): warm-up "
                          f"restarts at stage 1 of '{schedule.name}'")
    return current


def _judge(state: WarmupState, schedule: Schedule, day: int, outcome: DayOutcome,
           baseline: Callable[[int], Counts], settings: WarmupSettings) -> WarmupState:
    stage = state.stage
    label = f"day {day - state.started_day + 1}, stage {stage + 1} of '{schedule.name}'"
    if day < state.stage_day or not outcome.active:
        return replace(state, judged_day=day)
    active = replace(state, judged_day=day, last_active_day=day)
    cap = schedule.cap(stage, state.provider)
    if cap is None:
        return replace(active, why=f"{label}: schedule complete, no cap")
    delivered = outcome.counts.delivered
    needed = settings.advance_fraction * cap
    if delivered <= needed:
        return replace(active, why=f"{label}{HELD} delivered {delivered:,} of the {cap:,} "
                       f"cap ({delivered / cap if cap else 0:.0%}), needs more than "
                       f"{settings.advance_fraction:.0%}")
    worse = deterioration(outcome.counts, baseline(day), settings)
    if worse is not None:
        return replace(active, why=f"{label}{HELD} delivered {delivered:,} of {cap:,}, but "
                       f"the reputation at {state.provider} is deteriorating: {worse}")
    following = schedule.cap(stage + 1, state.provider)
    nxt = ("schedule complete, no cap" if following is None
           else f"cap {following:,} a day")
    return replace(active, stage=stage + 1, stage_day=day + 1,
                   why=f"{label} done: delivered {delivered:,} of {cap:,} "
                   f"(> {settings.advance_fraction:.0%}), reputation at {state.provider} "
                   f"steady → stage {stage + 2}: {nxt}")
