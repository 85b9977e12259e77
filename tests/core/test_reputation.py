"""Reputation ledger and rates: O(1) folding, windows, Wilson bounds, insufficient data."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.core.events import Event, EventKind
from poolwarden.core.reputation import (
    ALL_PROVIDERS,
    Ledger,
    Scope,
    metrics_of,
    rate,
    wilson_interval,
)
from poolwarden.testing.builders import event

DAY = 86400.0
D0 = 20000


def test_event_counts_towards_tenant_ip_domain_and_pair_per_provider_and_overall():
    ledger = Ledger()
    ledger.add(event(EventKind.HARD_BOUNCE, tenant="shop", ip="127.0.0.11",
                     sending_domain="shop.example", provider="google", time=D0 * DAY))
    for scope, scope_id in ((Scope.TENANT, "shop"), (Scope.IP, "127.0.0.11"),
                            (Scope.DOMAIN, "shop.example"), (Scope.IP_TENANT, "127.0.0.11|shop")):
        for provider in ("google", ALL_PROVIDERS):
            assert ledger.window(scope, scope_id, end_day=D0, days=1,
                                 provider=provider).hard_bounces == 1
        assert ledger.window(scope, scope_id, end_day=D0, days=1, provider="yahoo").volume == 0
    assert ledger.tenants_on_ip("127.0.0.11") == {"shop"}


def test_window_includes_only_its_days():
    ledger = Ledger()
    for day in range(D0 - 10, D0 + 1):
        ledger.add(event(EventKind.DELIVERED, time=day * DAY + 5))
    assert ledger.window(Scope.TENANT, "shop", end_day=D0, days=7).delivered == 7
    assert ledger.window(Scope.TENANT, "shop", end_day=D0 - 5, days=3).delivered == 3
    assert ledger.window(Scope.TENANT, "shop", end_day=D0 + 30, days=7).delivered == 0


def test_prune_drops_old_buckets_only():
    ledger = Ledger()
    ledger.add(event(EventKind.DELIVERED, time=(D0 - 40) * DAY))
    ledger.add(event(EventKind.DELIVERED, time=D0 * DAY))
    ledger.prune(D0 - 31)
    assert ledger.window(Scope.TENANT, "shop", end_day=D0, days=365).delivered == 1


def test_wilson_matches_known_value():
    low, high = wilson_interval(10, 100, 1.96)
    # reference: Wilson 95 % interval for 10/100 is 0.0552 – 0.1744
    assert math.isclose(low, 0.0552, abs_tol=5e-4)
    assert math.isclose(high, 0.1744, abs_tol=5e-4)
    assert wilson_interval(0, 0, 1.96) == (0.0, 1.0)


def test_rate_below_floor_is_insufficient_and_says_so():
    r = rate(2, 40, 200, 1.96)
    assert not r.sufficient
    assert "insufficient data" in r.describe()
    assert r.value == 0.05
    assert rate(10, 200, 200, 1.96).sufficient


def test_metrics_denominators():
    ledger = Ledger()
    for kind, n in ((EventKind.DELIVERED, 90), (EventKind.HARD_BOUNCE, 6),
                    (EventKind.SOFT_BOUNCE, 4), (EventKind.DEFERRED, 10),
                    (EventKind.COMPLAINT, 3), (EventKind.TRAP_HIT, 2)):
        for _ in range(n):
            ledger.add(event(kind, time=D0 * DAY))
    m = metrics_of(ledger.window(Scope.TENANT, "shop", end_day=D0, days=1), 1,
                   bounce_floor=50, complaint_floor=50, z=1.96)
    assert m.volume == 100
    assert m.hard_bounce_rate.value == 0.06
    assert m.complaint_rate.value == 3 / 90
    assert m.deferral_rate.value == 10 / 110
    assert m.trap_hits == 2


kinds = st.sampled_from(list(EventKind))
events_strategy = st.lists(
    st.builds(lambda k, d, p, t: Event(key="x", time=(D0 - d) * DAY + 1, kind=k, tenant=t,
                                       provider=p, ip="127.0.0.11"),
              kinds, st.integers(0, 40), st.sampled_from(["google", "yahoo", "other"]),
              st.sampled_from(["a", "b"])),
    max_size=120)


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_any_order_gives_the_same_state(events, rnd):
    first, second = Ledger(), Ledger()
    for e in events:
        first.add(e)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    for e in shuffled:
        second.add(e)
    snapshot_a = sorted((s, i, p, d, c.as_tuple()) for s, i, p, d, c in first.buckets())
    snapshot_b = sorted((s, i, p, d, c.as_tuple()) for s, i, p, d, c in second.buckets())
    assert snapshot_a == snapshot_b


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.integers(1, 60), st.integers(1, 5000))
def test_rates_stay_in_unit_interval(events, days, floor):
    ledger = Ledger()
    for e in events:
        ledger.add(e)
    counts = ledger.window(Scope.TENANT, "a", end_day=D0, days=days)
    m = metrics_of(counts, days, bounce_floor=floor, complaint_floor=floor, z=1.96)
    for r in (m.hard_bounce_rate, m.complaint_rate, m.deferral_rate):
        assert 0.0 <= r.low <= r.value <= r.high <= 1.0 or r.sample == 0
        assert 0.0 <= r.low <= r.high <= 1.0
        assert r.sufficient == (r.sample >= floor)
