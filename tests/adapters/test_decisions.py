"""Routing decisions and the change marker, run on every backend: SQLite, PostgreSQL, memory.

Decisions round-trip, are listed newest first and filtered, get their Postfix
queue id bound per (node, instance) without touching rows bound before, and
keep hostile network text as cleaned text instead of failing the batch. The
change marker grows with every recorded move or cleared pin, and only then.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from poolwarden.adapters import schema, storable
from poolwarden.adapters.sqlstore import SqlStore
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import Tier
from poolwarden.core.tiers import TierMove
from poolwarden.ports import DecisionRow, Store

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def decision(instance: str = "1A2B.3C4D.1", *, node: str = "mx1", at: float = 1000.0,
             tenant: str | None = "acme", recipient: str = "bob@example.net",
             action: str = "FILTER smtp-pool-a:", ip: str | None = "192.0.2.1",
             pool: str | None = "pool-a", rule: str = "tier_good",
             snapshot_version: int = 7, queue_id: str | None = None) -> DecisionRow:
    return DecisionRow(at=at, node=node, instance=instance, tenant=tenant,
                       recipient=recipient, action=action, ip=ip, pool=pool, rule=rule,
                       snapshot_version=snapshot_version, queue_id=queue_id)


def move(tenant: str, before: Tier, after: Tier, *, at: float, pinned: bool = False
         ) -> TierMove:
    return TierMove(tenant=tenant, before=before, after=after, at=at,
                    rule="override" if pinned else "hard_bounce_risky", reason="test",
                    actor="alice" if pinned else "engine", source="cli" if pinned else "engine",
                    metrics={"rate": 0.05}, thresholds={"limit": 0.02}, pinned=pinned)


def test_decisions_round_trip(store: Store) -> None:
    rows = [decision("i1", at=1000.25),
            decision("i2", at=1001.5, tenant=None, ip=None, pool=None, action="REJECT",
                     rule="unknown_sender", snapshot_version=0),
            decision("i3", at=1002.0, queue_id="4XyZ1", recipient="Überprüfung@例え.jp")]
    store.add_decisions(rows)
    store.add_decisions([])
    assert store.decisions() == rows[::-1]
    assert all(isinstance(row, DecisionRow) for row in store.decisions())


def test_decisions_are_listed_newest_first_and_filtered(store: Store) -> None:
    first = [decision("a1", tenant="acme", at=5.0), decision("g1", tenant="globex", at=5.0),
             decision("a2", tenant="acme", at=4.0)]  # older time, later row: order is by row
    store.add_decisions(first)
    later = [decision("a3", tenant="acme", at=6.0, queue_id="Q3"),
             decision("n1", tenant=None, at=6.0, queue_id="Q3")]
    store.add_decisions(later)
    a1, g1, a2 = first
    a3, n1 = later

    assert store.decisions() == [n1, a3, a2, g1, a1]
    assert store.decisions(limit=2) == [n1, a3]
    assert store.decisions(limit=0) == []
    assert store.decisions(tenant="acme") == [a3, a2, a1]
    assert store.decisions(tenant="acme", limit=1) == [a3]
    assert store.decisions(queue_id="Q3") == [n1, a3]
    assert store.decisions(tenant="acme", queue_id="Q3") == [a3]
    assert store.decisions(tenant="globex", queue_id="Q3") == []
    assert store.decisions(tenant="nobody") == []


def test_bind_queue_ids_binds_only_that_node_and_instance(store: Store) -> None:
    store.add_decisions([decision("i1", node="mx1", recipient="a@example.net"),
                         decision("i1", node="mx1", recipient="b@example.net"),
                         decision("i1", node="mx2"),  # the same instance id on another node
                         decision("i2", node="mx1")])
    store.bind_queue_ids("mx1", [("i1", "QA"), ("unknown", "QX")])
    store.bind_queue_ids("mx1", [])

    bound = store.decisions(queue_id="QA")
    assert {(row.node, row.instance, row.recipient) for row in bound} == {
        ("mx1", "i1", "a@example.net"), ("mx1", "i1", "b@example.net")}
    assert {(row.node, row.instance) for row in store.decisions() if row.queue_id is None} == {
        ("mx2", "i1"), ("mx1", "i2")}
    assert store.decisions(queue_id="QX") == []


def test_a_reused_instance_id_keeps_its_earlier_binding(store: Store) -> None:
    store.add_decisions([decision("i1", node="mx1", at=1.0)])
    store.bind_queue_ids("mx1", [("i1", "Q-old")])
    # Postfix starts the instance counter again (a restart): the id comes back.
    store.add_decisions([decision("i1", node="mx1", at=2.0),
                         decision("i1", node="mx2", at=2.0)])
    store.bind_queue_ids("mx1", [("i1", "Q-new")])
    store.bind_queue_ids("mx1", [("i1", "Q-again")])  # nothing unbound is left

    assert [row.at for row in store.decisions(queue_id="Q-old")] == [1.0]
    assert [(row.node, row.at) for row in store.decisions(queue_id="Q-new")] == [("mx1", 2.0)]
    assert store.decisions(queue_id="Q-again") == []
    assert [row.node for row in store.decisions() if row.queue_id is None] == ["mx2"]


def test_a_row_stored_with_a_queue_id_is_not_rebound(store: Store) -> None:
    store.add_decisions([decision("i1", queue_id="Q-given"), decision("i1")])
    store.bind_queue_ids("mx1", [("i1", "Q-bound")])
    assert [row.queue_id for row in store.decisions()] == ["Q-bound", "Q-given"]


def test_change_marker_grows_with_moves_and_pins_only(store: Store) -> None:
    start = store.change_marker()
    assert isinstance(start, int)

    store.add_events([Event(key="e1", time=1.0, kind=EventKind.DELIVERED, tenant="acme",
                            provider="gmail", ip=None, sending_domain=None,
                            recipient_domain=None)])
    store.add_decisions([decision()])
    store.bind_queue_ids("mx1", [("1A2B.3C4D.1", "Q1")])
    store.record_moves([])
    assert store.change_marker() == start

    store.record_moves([move("acme", Tier.NEW, Tier.RISKY, at=10.0)])
    after_move = store.change_marker()
    assert after_move > start

    store.record_moves([move("acme", Tier.RISKY, Tier.GOOD, at=20.0, pinned=True)])
    after_pin = store.change_marker()
    assert after_pin > after_move

    store.clear_pin("acme", actor="bob", why="done", at=30.0, source="web")
    after_clear = store.change_marker()
    assert after_clear > after_pin

    store.clear_pin("acme", actor="bob", why="again", at=40.0, source="web")  # no pin: no-op
    store.clear_pin("nobody", actor="bob", why="?", at=40.0, source="web")
    assert store.change_marker() == after_clear


def test_hostile_text_is_stored_cleaned(store: Store) -> None:
    long_recipient = "x" * 4_990 + "@example.net"  # 5,002 characters
    hostile = [
        decision("i\x001", node="m\x00x1", recipient="bo\x00b@example.net",
                 rule="r\x00ule", action="FILTER\x00", tenant="ac\x00me", ip="192.0.2.\x001",
                 pool="po\x00ol", queue_id="Q\x00Z"),
        decision("i2", recipient=long_recipient, rule="r" * 5_000, action="A" * 5_000,
                 tenant="t" * 5_000, pool="p" * 5_000),
        decision("i3", tenant="initech", recipient="half \udcff surrogate"),  # surrogateescape
    ]
    good = [decision(f"g{i}", tenant="globex") for i in range(600)]
    store.add_decisions([*good[:300], *hostile, *good[300:]])

    stored = store.decisions(limit=1_000)
    assert len(stored) == 603
    by_instance = {row.instance: row for row in stored}
    assert by_instance["i1"] == decision(
        "i1", node="mx1", recipient="bob@example.net", rule="rule", action="FILTER",
        tenant="acme", ip="192.0.2.1", pool="pool", queue_id="QZ")
    long_row = by_instance["i2"]
    assert long_row.recipient == long_recipient[:storable.MAX_RECIPIENT_LENGTH]
    assert long_row.rule == "r" * storable.MAX_DECISION_TEXT_LENGTH
    assert long_row.action == "A" * storable.MAX_DECISION_TEXT_LENGTH
    assert long_row.tenant == "t" * storable.MAX_DECISION_NAME_LENGTH
    assert long_row.pool == "p" * storable.MAX_DECISION_NAME_LENGTH
    assert by_instance["i3"].recipient == "half ? surrogate"

    # Lookups and bindings are cleaned the same way, so they find what was stored.
    assert store.decisions(tenant="ac\x00me") == [by_instance["i1"]]
    assert store.decisions(queue_id="Q\x00Z") == [by_instance["i1"]]
    store.bind_queue_ids("m\x00x1", [("i\x00" + "3", "Q\x003")])
    assert [row.instance for row in store.decisions(queue_id="Q3")] == ["i3"]


def test_recipient_limit_matches_the_schema() -> None:
    assert schema.decisions.c.recipient.type.length == storable.MAX_RECIPIENT_LENGTH


def test_ten_thousand_decisions_in_one_batch(store: Store) -> None:
    rows = [decision(f"{i:05X}.1", node=f"mx{i % 3}", tenant=f"t{i % 50}", at=float(i),
                     recipient=f"user{i}@example.net") for i in range(10_000)]
    store.add_decisions(rows)
    pairs = [(f"{i:05X}.1", f"Q{i}") for i in range(0, 10_000, 3)]  # every row of node mx0
    store.bind_queue_ids("mx0", pairs)

    newest = store.decisions(limit=20_000)
    assert newest == [replace(row, queue_id=f"Q{i}" if i % 3 == 0 else None)
                      for i, row in reversed(list(enumerate(rows)))]
    assert store.decisions(tenant="t7", limit=2) == [replace(rows[9_957], queue_id="Q9957"),
                                                      rows[9_907]]
    assert store.decisions(queue_id="Q9999") == [replace(rows[9_999], queue_id="Q9999")]


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_failed_decision_batch_stores_nothing(sql_store: SqlStore) -> None:
    sql_store.add_decisions([decision("before")])
    rows = [decision(f"r{i}") for i in range(7_000)]  # two statements; the bad row in the second
    rows[6_500] = replace(rows[6_500], at=None)  # NOT NULL: the database itself refuses it
    with pytest.raises(StoreError, match="add decisions failed"):
        sql_store.add_decisions(rows)
    assert [row.instance for row in sql_store.decisions(limit=10)] == ["before"]
