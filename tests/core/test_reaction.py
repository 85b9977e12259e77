"""Reaction rules in the core: trigger thresholds, expiry, ramp-back, scope isolation."""

from __future__ import annotations

import re

import pytest

from poolwarden.core.reaction import (
    Observation,
    ReactionAction,
    ReactionState,
    Rule,
    RuleScope,
    format_duration,
    parse_duration,
    restrictions_of,
)
from poolwarden.core.shaping import RestrictionIndex, RestrictionKind

T0 = 1_800_000_000.0
GMAIL_421 = ("host gmail-smtp-in.l.google.com[142.250.1.27] said: 421-4.7.28 [127.0.0.21] "
             "Our system has detected an unusual rate of unsolicited mail originating from "
             "your IP address. (in reply to end of DATA command)")


def rule(**kw: object) -> Rule:
    base: dict[str, object] = {
        "name": "g428", "provider": "google", "action": ReactionAction.PAUSE,
        "duration": 600.0, "code": re.compile(r"4\.7\.28"), "threshold": 3, "period": 300.0,
        "ramp": (0.25, 0.5), "ramp_step": 120.0}
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


def obs(t: float, *, ip: str = "127.0.0.21", provider: str = "google",
        tenant: str = "bigretail", code: str | None = "4.7.28", reply: str = GMAIL_421,
        status: str = "deferred") -> Observation:
    return Observation(time=t, provider=provider, ip=ip, tenant=tenant, status=status,
                       code=code, reply=reply, queue_id="4Q1", recipient="a@gmail.com")


def test_fires_on_the_threshold_not_before() -> None:
    state = ReactionState([rule()])
    assert state.observe(obs(T0)) == []
    assert state.observe(obs(T0 + 10)) == []
    fired = state.observe(obs(T0 + 20))
    assert len(fired) == 1
    a = fired[0]
    assert (a.rule, a.ip, a.provider, a.matches, a.threshold) == ("g428", "127.0.0.21",
                                                                   "google", 3, 3)
    assert a.started_at == T0 + 20 and a.until == T0 + 620
    assert len(a.lines) == 3 and "4.7.28" in a.lines[0] and "127.0.0.21→google" in a.lines[0]
    assert "3 replies matching code 4\\.7\\.28 within 20s (trigger 3 in 5m)" in a.why
    assert "pause 127.0.0.21→google for 10m" in a.why
    assert "ramp back ×0.25 for 2m, ×0.5 for 2m, then full" in a.why


def test_matches_outside_the_period_do_not_add_up() -> None:
    state = ReactionState([rule()])
    assert state.observe(obs(T0)) == []
    assert state.observe(obs(T0 + 200)) == []
    assert state.observe(obs(T0 + 301)) == []  # T0 fell out of the 5-minute window
    assert len(state.observe(obs(T0 + 350))) == 1


def test_immediate_rule_fires_on_the_first_match() -> None:
    state = ReactionState([rule(threshold=1, period=0.0)])
    assert len(state.observe(obs(T0))) == 1


def test_expires_after_its_duration_and_ramps_back() -> None:
    state = ReactionState([rule(threshold=1, period=0.0)])
    (a,) = state.observe(obs(T0))

    def kinds(at: float) -> list[tuple[RestrictionKind, float]]:
        index = RestrictionIndex.build(restrictions_of([a], at), now=at)
        return sorted((r.kind, r.cap_factor) for r in index.for_ip("127.0.0.21", "google", at))

    assert kinds(T0 + 1)[0] == (RestrictionKind.CAP, 0.25)  # the ramp is already attached
    assert (RestrictionKind.PAUSE, 1.0) in kinds(T0 + 1)
    assert (RestrictionKind.PAUSE, 1.0) in kinds(T0 + 599)
    assert kinds(T0 + 600) == [(RestrictionKind.CAP, 0.25), (RestrictionKind.CAP, 0.5)]
    assert min(f for _, f in kinds(T0 + 600)) == 0.25
    assert kinds(T0 + 720) == [(RestrictionKind.CAP, 0.5)]
    assert kinds(T0 + 840) == []
    assert a.phase(T0 + 1) == "active"
    assert a.phase(T0 + 700) == "ramping ×0.25"
    assert a.phase(T0 + 800) == "ramping ×0.5"
    assert a.phase(T0 + 840) == "expired"
    assert a.ends_at == T0 + 840


def test_cap_without_ramp_lifts_at_once() -> None:
    a = ReactionState([rule(threshold=1, action=ReactionAction.CAP, cap_factor=0.1,
                            ramp=(), ramp_step=0.0)]).observe(obs(T0))[0]
    (r,) = a.restrictions(T0 + 5)
    assert (r.kind, r.cap_factor, r.until) == (RestrictionKind.CAP, 0.1, T0 + 600)
    assert a.restrictions(T0 + 600) == []


def test_scopes_are_isolated() -> None:
    state = ReactionState([rule()])
    for i in range(2):
        assert state.observe(obs(T0 + i)) == []
    # another IP, another provider, a reply that does not match: none of them count
    assert state.observe(obs(T0 + 3, ip="127.0.0.22")) == []
    assert state.observe(obs(T0 + 4, provider="yahoo")) == []
    assert state.observe(obs(T0 + 5, code="4.2.0", reply="451 4.2.0 mailbox busy")) == []
    assert state.observe(obs(T0 + 6, status="sent")) == []
    (a,) = state.observe(obs(T0 + 7))
    (r,) = [r for r in a.restrictions(T0 + 8) if r.kind is RestrictionKind.PAUSE]
    assert (r.ip, r.provider, r.tenant) == ("127.0.0.21", "google", None)
    index = RestrictionIndex.build(a.restrictions(T0 + 8), now=T0 + 8)
    assert index.for_ip("127.0.0.22", "google", T0 + 8) == ()
    assert index.for_ip("127.0.0.21", "yahoo", T0 + 8) == ()


def test_tenant_scope_counts_per_tenant_across_ips() -> None:
    state = ReactionState([rule(scope=RuleScope.TENANT, threshold=2)])
    assert state.observe(obs(T0, ip="127.0.0.11")) == []
    assert state.observe(obs(T0 + 1, ip="127.0.0.12", tenant="other")) == []
    (a,) = state.observe(obs(T0 + 2, ip="127.0.0.12"))
    assert (a.tenant, a.ip) == ("bigretail", None)  # two IPs in its lines: none named
    (r,) = [r for r in a.restrictions(T0 + 3) if r.kind is RestrictionKind.PAUSE]
    assert (r.tenant, r.ip) == ("bigretail", None)


def test_matches_during_the_main_phase_do_not_extend_it() -> None:
    state = ReactionState([rule(threshold=2)])
    state.observe(obs(T0))
    (first,) = state.observe(obs(T0 + 1))
    # queued mail keeps retrying from the paused IP: not counted while the pause runs
    for t in range(2, 600, 30):
        assert state.observe(obs(T0 + t)) == []
    assert state.quiet > 0
    # during the ramp-back they count again and may fire again
    assert state.observe(obs(T0 + 610)) == []
    (second,) = state.observe(obs(T0 + 611))
    assert second.started_at == T0 + 611 and second.until > first.ends_at


def test_remember_restores_the_quiet_period_after_a_restart() -> None:
    (a,) = ReactionState([rule(threshold=1)]).observe(obs(T0))
    state = ReactionState([rule(threshold=1)])
    state.remember([a])
    assert state.observe(obs(T0 + 5)) == []
    assert len(state.observe(obs(T0 + 601))) == 1


def test_code_matches_the_whole_code_and_falls_back_to_the_reply() -> None:
    r = rule(threshold=1)
    assert not r.matches(obs(T0, code="4.7.280"))
    assert r.matches(obs(T0, code=None))  # dsn missing: the code in the reply counts
    text = rule(threshold=1, code=None, provider="yahoo",
                text=re.compile(r"\[TS?S04\]", re.IGNORECASE))
    assert text.matches(obs(T0, provider="yahoo", code="4.7.0",
                            reply="421 4.7.0 [TSS04] Messages from 1.2.3.4 temporarily "
                                  "deferred"))
    assert not text.matches(obs(T0, provider="yahoo", code="4.7.0", reply="421 [TS01]"))


def test_any_provider_rule_scopes_by_the_observed_provider() -> None:
    state = ReactionState([rule(provider="*", threshold=1, code=None,
                                text=re.compile("rate limited due to IP reputation"))])
    (a,) = state.observe(obs(T0, provider="other",
                             reply="451 has been temporarily rate limited due to IP reputation"))
    assert a.provider == "other"


def test_ip_scoped_rule_needs_an_ip() -> None:
    assert ReactionState([rule(threshold=1)]).observe(obs(T0, ip=None)) == []  # type: ignore[arg-type]


def test_observe_all_orders_by_time_and_forget_bounds_memory() -> None:
    state = ReactionState([rule()])
    fired = state.observe_all([obs(T0 + 20), obs(T0), obs(T0 + 10)])
    assert len(fired) == 1 and fired[0].started_at == T0 + 20
    state.observe(obs(T0 + 1000, ip="127.0.0.30"))
    state.forget_before(T0 + 5000)
    assert state._windows == {}


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("2 hours", 7200),
    ("1 day", 86400), ("hr", 3600), ("0.5h", 1800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 parsecs", "h5", "2h m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(20) == "20s"


def test_the_routing_caps_step_through_the_ramp_without_a_new_snapshot() -> None:
    from poolwarden.core.caps import CapPlan, fold_restrictions

    (a,) = ReactionState([rule(threshold=1)]).observe(obs(T0))
    limits = fold_restrictions(CapPlan(full_caps={"google": 1000}), a.restrictions(T0), {})
    cap = limits.ip_caps[("127.0.0.21", "google")]

    def limit(at: float) -> int | None:
        found = cap.at(at)
        return None if found is None else found.limit

    assert [limit(T0 + 1), limit(T0 + 599)] == [0, 0]  # paused
    assert [limit(T0 + 600), limit(T0 + 719)] == [250, 250]  # ×0.25
    assert [limit(T0 + 720), limit(T0 + 839)] == [500, 500]  # ×0.5
    assert limit(T0 + 840) is None  # full speed


def test_with_rules_keeps_quiet_periods_of_remaining_rules() -> None:
    state = ReactionState([rule(threshold=1), rule(name="gone", threshold=1)])
    assert len(state.observe(obs(T0))) == 2
    fresh = state.with_rules([rule(threshold=1), rule(name="added", threshold=1)])
    fired = fresh.observe(obs(T0 + 5))
    assert [a.rule for a in fired] == ["added"]  # g428 is still quiet, as before the reload
