"""Tier rules: demotion on evidence, insufficient data protects, proof promotes, pins hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.core.model import Tier
from poolwarden.core.reputation import Counts, metrics_of
from poolwarden.core.thresholds import Thresholds, validate_thresholds
from poolwarden.core.tiers import evaluate, findings, proof

T = Thresholds()
NOW = 20000 * 86400.0


def m(delivered=0, hard=0, soft=0, complaints=0, traps=0, deferred=0, days=7, active=None):
    c = Counts(delivered=delivered, deferred=deferred, hard_bounces=hard, soft_bounces=soft,
               complaints=complaints, trap_hits=traps)
    return metrics_of(c, days, bounce_floor=T.bounce_min_sample,
                      complaint_floor=T.complaint_min_sample, z=T.confidence_z,
                      active_days=days if active is None else active)


def move(current, window, proof_window=None, *, since=0.0, pinned=False, thresholds=T):
    return evaluate("t", current, since=since, pinned=pinned, window=window,
                    proof_window=proof_window or window, thresholds=thresholds, now=NOW)


def test_forty_messages_with_two_bounces_is_insufficient_data():
    result = move(Tier.GOOD, m(delivered=38, hard=2))
    assert result is None
    assert findings(m(delivered=38, hard=2), T) == []


def test_bounce_rate_over_floor_moves_good_to_risky_with_numbers():
    result = move(Tier.GOOD, m(delivered=940, hard=60))
    assert result is not None
    assert (result.before, result.after, result.rule) == (Tier.GOOD, Tier.RISKY,
                                                          "hard_bounce_risky")
    assert "6.00% over 1000" in result.reason and "hard_bounce_risky 5.00%" in result.reason
    assert result.thresholds["hard_bounce_risky"] == 0.05
    assert result.metrics["window"]["hard_bounce_rate"]["sample"] == 1000


def test_suspend_level_jumps_straight_to_suspended():
    result = move(Tier.GOOD, m(delivered=850, hard=150))
    assert result is not None and result.after is Tier.SUSPENDED


def test_trap_hits_act_by_count_even_on_low_volume():
    assert move(Tier.GOOD, m(delivered=30, traps=1)).after is Tier.RISKY
    assert move(Tier.RISKY, m(delivered=30, traps=3)).after is Tier.SUSPENDED


def test_complaints_need_their_own_floor():
    assert move(Tier.GOOD, m(delivered=500, complaints=5)) is None  # 500 < 1000 deliveries
    result = move(Tier.GOOD, m(delivered=2000, complaints=8))  # 0.4 %
    assert result.after is Tier.RISKY and result.rule == "complaint_risky"


def test_off_platform_only_when_allowed():
    bad = m(delivered=700, hard=300)
    assert move(Tier.GOOD, bad).after is Tier.OFF_PLATFORM
    tame = Thresholds(auto_off_platform=False)
    assert move(Tier.GOOD, bad, thresholds=tame).after is Tier.SUSPENDED


def test_pinned_and_off_platform_never_move():
    assert move(Tier.GOOD, m(delivered=700, hard=300), pinned=True) is None
    assert move(Tier.OFF_PLATFORM, m(delivered=100_000)) is None


def test_new_tenant_needs_proof_to_become_good():
    assert move(Tier.NEW, m(delivered=500)) is None  # too little evidence
    proven = m(delivered=5000, hard=20, days=30)
    result = move(Tier.NEW, m(delivered=1000), proven)
    assert result.after is Tier.GOOD and result.rule == "proven"
    assert "upper bound" in result.reason


def test_one_big_day_is_not_a_history():
    ok, why = proof(m(delivered=5000, days=30, active=1), T)
    assert not ok
    assert any("proof_min_active_days 7" in w for w in why)
    assert move(Tier.NEW, m(delivered=5000), m(delivered=5000, days=30, active=6)) is None


def test_proof_fails_with_reasons():
    ok, why = proof(m(delivered=1500, complaints=3, days=30), T)
    assert not ok
    assert any("complaint rate" in w for w in why)
    ok, why = proof(m(delivered=5000, traps=1, days=30), T)
    assert not ok and any("spam-trap" in w for w in why)


def test_suspended_recovers_to_risky_only_after_minimum_days():
    clean = m(delivered=0)
    assert move(Tier.SUSPENDED, clean, since=NOW - 3 * 86400) is None
    result = move(Tier.SUSPENDED, clean, since=NOW - 8 * 86400)
    assert result.after is Tier.RISKY and result.rule == "suspension_recovery"
    still_bad = m(delivered=800, hard=200)
    assert move(Tier.SUSPENDED, still_bad, since=NOW - 30 * 86400) is None


def test_thresholds_validation_names_fields():
    assert validate_thresholds(T.as_dict()) == []
    assert validate_thresholds({"hard_bounce_risky": 0.5})[0][0] == "hard_bounce_keep_under"
    bad = dict(T.as_dict(), hard_bounce_risky=0.2)
    problems = []
    try:
        Thresholds(**bad)
    except ValueError as exc:
        problems.append(str(exc))
    assert problems and "hard_bounce_keep_under" in problems[0]


counts = st.integers(0, 20000)


@settings(max_examples=300, deadline=None)
@given(counts, counts, st.sampled_from([Tier.GOOD, Tier.NEW, Tier.RISKY]))
def test_a_clean_tenant_never_moves_down(delivered, soft, tier):
    clean = m(delivered=delivered, soft=soft)
    result = move(tier, clean, m(delivered=delivered, soft=soft, days=30))
    if result is not None:
        from poolwarden.core.model import TIER_RANK
        assert TIER_RANK[result.after] < TIER_RANK[tier]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 199), st.integers(0, 199), st.sampled_from([Tier.GOOD, Tier.NEW]))
def test_below_the_bounce_floor_no_rate_rule_fires(delivered, hard, tier):
    if delivered + hard >= T.bounce_min_sample:
        return
    assert move(tier, m(delivered=delivered, hard=hard)) is None
