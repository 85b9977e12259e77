"""Reaction activations in the store (SQLite, PostgreSQL, memory): idempotent, filtered,
round-tripped whole, and moving the change marker that routing agents poll."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from poolwarden.core.model import Tier
from poolwarden.core.reaction import Activation, ReactionAction, RuleScope
from poolwarden.core.tiers import TierMove
from poolwarden.ports import Store

T0 = 1_800_000_000.0


def activation(**kw: object) -> Activation:
    base: dict[str, object] = {
        "rule": "google-ip-unusual-rate", "action": ReactionAction.PAUSE,
        "scope": RuleScope.IP, "provider": "google", "ip": "127.0.0.21", "tenant": "bigretail",
        "started_at": T0, "until": T0 + 600, "steps": ((0.25, T0 + 720), (0.5, T0 + 840)),
        "matches": 3, "threshold": 3, "period": 300.0,
        "why": "rule g: 3 replies matching code 4\\.7\\.28 within 20s (trigger 3 in 5m)",
        "lines": ("2027-01-15T08:00:00Z deferred 127.0.0.21→google: 421-4.7.28 …",) * 3}
    base.update(kw)
    return Activation(**base)  # type: ignore[arg-type]


def test_round_trip_and_idempotence(store: Store) -> None:
    a = activation()
    (stored,) = store.add_reaction_activations([a, a], recorded_at=T0 + 1)
    assert stored.id is not None and stored.recorded_at == T0 + 1
    assert store.add_reaction_activations([a], recorded_at=T0 + 2) == []  # same key
    (back,) = store.reaction_activations()
    assert back == stored
    assert back.steps == ((0.25, T0 + 720), (0.5, T0 + 840)) and back.ends_at == T0 + 840
    assert back.lines == a.lines and back.why == a.why


def test_filters_and_order(store: Store) -> None:
    first, second, third = store.add_reaction_activations([
        activation(),
        activation(started_at=T0 + 100, until=T0 + 200, steps=(), ip="127.0.0.22"),
        activation(rule="tenant-rule", scope=RuleScope.TENANT, ip=None, tenant="acme",
                   started_at=T0 + 5, action=ReactionAction.REROUTE, pool="shared-new",
                   steps=()),
    ], recorded_at=T0 + 300)
    ids = [a.id for a in store.reaction_activations()]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3  # newest first
    assert {a.ip for a in store.reaction_activations(ip="127.0.0.22")} == {"127.0.0.22"}
    assert [a.tenant for a in store.reaction_activations(tenant="acme")] == ["acme"]
    # in force at T0+700: the first (ramping until T0+840) only; the others ended before
    assert [a.id for a in store.reaction_activations(active_at=T0 + 700)] == [first.id]
    assert len(store.reaction_activations(active_at=T0 + 150)) == 3
    lowest = min(a.id or 0 for a in (first, second, third))
    assert len(store.reaction_activations(after_id=lowest)) == 2
    assert store.reaction_activations(since=T0 + 301) == []
    assert len(store.reaction_activations(limit=1)) == 1


def test_an_activation_moves_the_change_marker(store: Store) -> None:
    before = store.change_marker()
    store.add_reaction_activations([activation()], recorded_at=T0)
    after_one = store.change_marker()
    assert after_one > before
    store.add_reaction_activations([activation()], recorded_at=T0)  # duplicate: no change
    assert store.change_marker() == after_one
    store.record_moves([TierMove(tenant="acme", before=Tier.NEW, after=Tier.RISKY, at=T0,
                                 rule="r", reason="x")])
    assert store.change_marker() > after_one


def test_long_and_odd_text_is_cut_not_refused(store: Store) -> None:
    a = activation(why="w" * 10_000, lines=("x\x00y" * 1000,) * 80, tenant="t" * 400)
    (stored,) = store.add_reaction_activations([a], recorded_at=T0)
    (back,) = store.reaction_activations()
    assert back == stored
    assert len(back.why) <= 4000 and len(back.lines) == 50 and "\x00" not in back.lines[0]
    assert back.tenant is not None and len(back.tenant) == 255


def test_two_stores_on_one_database_store_an_activation_once(
        make_store: Callable[[], Store]) -> None:
    one, two = make_store(), make_store()
    a = activation()
    got = one.add_reaction_activations([a], recorded_at=T0)
    if two is one or type(one).__name__ == "MemoryStore":
        return  # separate memory stores share nothing
    assert two.add_reaction_activations([replace(a, why="again")], recorded_at=T0) == []
    assert [x.id for x in two.reaction_activations()] == [got[0].id]
