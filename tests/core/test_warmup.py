"""Warm-up schedules: parsing, stage advancement on delivered volume, holds and idle restart."""

from __future__ import annotations

import pytest

from poolwarden.core.reputation import Counts
from poolwarden.core.warmup import (
    WARMUP_PROVIDERS,
    DayOutcome,
    Schedule,
    WarmupSettings,
    advance,
    deterioration,
    new_state,
    parse_schedule,
)

SETTINGS = WarmupSettings()
SCHEDULE = Schedule("t", {"google": (100, 200, 400), "other": (10, 20, 40)})
D0 = 20000  # a UTC day number


def delivered(n: int, **kw: int) -> DayOutcome:
    return DayOutcome(Counts(delivered=n, **kw), routed=n)


def run(days: dict[int, DayOutcome], *, start: int = D0, today: int, provider: str = "google",
        state=None, baseline=None):
    state = state or new_state("ip", "127.0.0.23", provider, SCHEDULE, start)
    return advance(state, SCHEDULE, today=today,
                   outcome=lambda d: days.get(d, DayOutcome(Counts())),
                   baseline=baseline or (lambda d: Counts()), settings=SETTINGS)


def test_advances_only_on_delivered_volume():
    # day 1: 95 of 100 delivered (> 90 %) → stage 2 from day 2
    s = run({D0: delivered(95)}, today=D0 + 1)
    assert s.stage == 1 and s.stage_day == D0 + 1
    assert "delivered 95 of 100" in s.why and "stage 2: cap 200" in s.why
    assert SCHEDULE.cap(s.stage, "google") == 200


def test_routed_but_not_delivered_holds():
    # the agent routed 100, the provider accepted only 90 (exactly 90 %: not more than)
    s = run({D0: DayOutcome(Counts(delivered=90, deferred=10), routed=100)}, today=D0 + 1)
    assert s.stage == 0
    assert "held: delivered 90 of the 100 cap (90%), needs more than 90%" in s.why


def test_a_stalled_stage_holds_however_long():
    days = {D0 + i: delivered(20) for i in range(10)}  # 20 % of the cap, every day
    s = run(days, today=D0 + 10)
    assert s.stage == 0 and s.judged_day == D0 + 9 and s.last_active_day == D0 + 9
    # once it delivers, it moves on
    days[D0 + 10] = delivered(99)
    s = run(days, today=D0 + 11, state=s)
    assert s.stage == 1


def test_one_stage_per_day_and_idempotent():
    days = {D0: delivered(100), D0 + 1: delivered(199), D0 + 2: delivered(390)}
    s = run(days, today=D0 + 3)
    assert s.stage == 3  # past the last stage: schedule complete
    assert SCHEDULE.cap(s.stage, "google") is None
    assert run(days, today=D0 + 3, state=s) == s
    # a day that delivered stage 2's volume while still in stage 1 advances only one stage
    s = run({D0: delivered(400)}, today=D0 + 1)
    assert s.stage == 1


def test_thirty_idle_days_restart():
    s = run({D0: delivered(100), D0 + 1: delivered(200)}, today=D0 + 2)
    assert s.stage == 2
    held = run({}, today=D0 + 31, state=s)  # last active D0+1: 29 idle days → keeps
    assert held.stage == 2
    restarted = run({}, today=D0 + 32, state=s)  # 30 complete idle days
    assert restarted.stage == 0 and restarted.started_day == D0 + 32
    assert "idle for 30 days (≥ 30)" in restarted.why
    assert run({}, today=D0 + 40, state=restarted).stage == 0  # no repeated restarts


def test_deteriorating_reputation_holds_the_stage():
    # delivered enough, but Google deferred far more than in the days before
    day = DayOutcome(Counts(delivered=95, deferred=60), routed=155)
    s = run({D0 + 5: day}, start=D0 + 5, today=D0 + 6,
            baseline=lambda d: Counts(delivered=500, deferred=5))
    assert s.stage == 0
    assert "deteriorating" in s.why and "deferral rate rose" in s.why
    # the same day against a baseline that deferred as much is not deterioration
    s = run({D0 + 5: day}, start=D0 + 5, today=D0 + 6,
            baseline=lambda d: Counts(delivered=300, deferred=200))
    assert s.stage == 1


def test_deterioration_needs_evidence():
    assert deterioration(Counts(delivered=3, deferred=1), Counts(delivered=100), SETTINGS) is None
    assert "spam-trap" in (deterioration(Counts(delivered=100, trap_hits=1), Counts(),
                                         SETTINGS) or "")
    why = deterioration(Counts(delivered=900, hard_bounces=100), Counts(), SETTINGS)
    assert why is not None and "hard-bounce rate 100/1000" in why and "2.00%" in why


def test_caps_per_provider_fall_back_to_other():
    assert SCHEDULE.cap(0, "google") == 100
    assert SCHEDULE.cap(0, "yahoo") == 10
    assert SCHEDULE.full_cap("microsoft") == 40
    # each provider walks its own stage
    g = run({D0: delivered(100)}, today=D0 + 1, provider="google")
    y = run({D0: delivered(5)}, today=D0 + 1, provider="yahoo")
    assert (g.stage, y.stage) == (1, 0)


def test_parse_schedule_good_and_bad():
    good, problems = parse_schedule({"caps": {"google": [1, 2], "other": [1, 1]}}, name="x",
                                    known_providers=WARMUP_PROVIDERS)
    assert problems == [] and good is not None and good.stages == 2
    _, problems = parse_schedule({"caps": {"google": [5, 3], "gmial": [1], "other": [1, -2]}},
                                 name="x", known_providers=WARMUP_PROVIDERS)
    text = "\n".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems)
    assert "caps.google: the schedule decreases: stage 2 (3) is below stage 1 (5)" in text
    assert "caps.gmial: unknown provider 'gmial'" in text
    assert "caps.other: stage 2: negative cap -2" in text
    _, problems = parse_schedule({"caps": {"google": [1]}}, name="x",
                                 known_providers=WARMUP_PROVIDERS)
    assert any("'other' is required" in m for _, m in problems)


@pytest.mark.parametrize("value", [1.5, "10", True])
def test_parse_schedule_rejects_non_integers(value):
    _, problems = parse_schedule({"caps": {"other": [value]}}, name="x",
                                 known_providers=WARMUP_PROVIDERS)
    assert problems and "whole number" in problems[0][1]
