"""Log checkpoints and ``add_events_at``, run on every backend: SQLite, PostgreSQL, memory.

A checkpoint round-trips (64-bit inode and device numbers included) and is replaced per
source; ``add_events_at`` stores events exactly as ``add_events`` does (idempotent by key,
the same day counters) and the checkpoint in the same transaction: when the write fails,
neither the events nor the checkpoint are there. ``decisions_for_queue_ids`` finds the
decisions of a batch of queue ids in one call.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.ports import Checkpoint, DecisionRow, Store
from tests.adapters.test_store import (
    buckets_of_ledger,
    event,
    ledger_of,
    random_events,
    stored_buckets,
)

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def checkpoint(offset: int = 4096, *, source: str = "/var/log/mail.log",
               **changes: object) -> Checkpoint:
    base = Checkpoint(source=source, fingerprint="1024:" + "ab" * 32, inode=1234567,
                      device=2049, offset=offset, resume_offset=max(0, offset - 100),
                      updated_at=1_795_392_000.25, mtime=1_795_391_999.5,
                      resume_fingerprint=None, year=2026, month=11)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_no_checkpoint_before_the_first(store: Store) -> None:
    assert store.checkpoint("/var/log/mail.log") is None


def test_a_checkpoint_round_trips_and_is_replaced_per_source(store: Store) -> None:
    first = checkpoint(4096)
    store.add_events_at([], first)
    assert store.checkpoint(first.source) == first

    huge = checkpoint(2**40, inode=2**64 - 5, device=2**63 + 7, resume_fingerprint="3:" + "cd" * 32,
                      year=None, month=0)
    store.add_events_at([], huge)
    assert store.checkpoint(first.source) == huge

    other = checkpoint(10, source="/var/log/postfix-b.log", inode=0, device=0)
    store.add_events_at([], other)
    assert store.checkpoint(other.source) == other
    assert store.checkpoint(first.source) == huge


def test_add_events_at_is_add_events_plus_the_checkpoint(store: Store) -> None:
    batch = random_events(80, seed=5)
    result = store.add_events_at(batch, checkpoint(100))
    assert (result.added, result.duplicates, result.added_events) == (80, 0, tuple(batch))
    assert stored_buckets(store) == buckets_of_ledger(ledger_of(batch))

    more = random_events(40, seed=6, prefix="f")
    again = store.add_events_at([*batch[:30], *more, more[0]], checkpoint(200))
    assert (again.added, again.duplicates) == (40, 31)
    assert again.added_events == tuple(more)
    assert stored_buckets(store) == buckets_of_ledger(ledger_of([*batch, *more]))
    assert store.event_count() == 120
    cp = store.checkpoint("/var/log/mail.log")
    assert cp is not None and cp.offset == 200


def test_add_events_at_without_a_checkpoint_stores_only_events(store: Store) -> None:
    result = store.add_events_at(random_events(5, seed=1), None)
    assert result.added == 5
    assert store.checkpoint("/var/log/mail.log") is None


def test_add_events_at_and_add_events_agree(store: Store) -> None:
    """Overlapping batches through ``add_events_at`` here and ``add_events`` on a memory
    store: the same results, the same counters."""
    reference = MemoryStore()
    batches = [random_events(50, seed=s, prefix=f"b{s % 3}-") for s in range(6)]
    for batch in batches:
        a = reference.add_events(batch)
        b = store.add_events_at(batch, checkpoint(1))
        assert (a.added, a.duplicates, a.added_events) == (b.added, b.duplicates,
                                                           b.added_events)
    assert stored_buckets(store) == stored_buckets(reference)


def test_an_unstorable_event_stores_neither_events_nor_checkpoint(store: Store) -> None:
    store.add_events_at([event("keep")], checkpoint(10))
    bad = event("bad", reason="x" * 5000)
    with pytest.raises(StoreError):
        store.add_events_at([event("new"), bad], checkpoint(20))
    assert store.event_count() == 1
    cp = store.checkpoint("/var/log/mail.log")
    assert cp is not None and cp.offset == 10


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_failing_checkpoint_write_rolls_the_events_back(store: Store) -> None:
    store.add_events_at([event("keep")], checkpoint(10))
    broken = checkpoint(20, fingerprint=None)  # NOT NULL: fails after the events went in
    with pytest.raises(StoreError):
        store.add_events_at([event("new")], broken)
    with pytest.raises(StoreError, match="out of range"):  # refused before anything
        store.add_events_at([event("new")], checkpoint(2**70))
    assert store.event_count() == 1
    assert stored_buckets(store) == buckets_of_ledger(ledger_of([event("keep")]))
    cp = store.checkpoint("/var/log/mail.log")
    assert cp is not None and cp.offset == 10


def test_counters_are_those_of_the_ledger_for_every_kind_and_scope(store: Store) -> None:
    """Every kind; with and without IP and sending domain (empty text counts as none):
    the day counters equal a Ledger fed the same events (SQLite folds them in SQL)."""
    events = [Event(key=f"k{kind.value}{n}", time=86400.0 * 20_000 + n, kind=kind,
                    tenant="acme", provider=provider, ip=ip, sending_domain=domain)
              for n, (ip, domain, provider) in enumerate([
                  ("192.0.2.1", "a.example", "gmail"), (None, None, "other"),
                  ("", "", "*"), ("192.0.2.2", None, "yahoo")])
              for kind in EventKind]
    store.add_events_at(events, None)
    assert stored_buckets(store) == buckets_of_ledger(ledger_of(events))
    store.add_events_at([replace(ev, key=ev.key + "b") for ev in events], None)
    assert stored_buckets(store) == buckets_of_ledger(
        ledger_of([*events, *(replace(ev, key=ev.key + "b") for ev in events)]))


def decision(instance: str, queue_id: str | None, *, at: float, node: str = "mx1",
             tenant: str = "acme") -> DecisionRow:
    return DecisionRow(at=at, node=node, instance=instance, tenant=tenant,
                       recipient="bob@example.net", action="FILTER pw-192-0-2-1:",
                       ip="192.0.2.1", pool="shared-good", rule="tier_good",
                       snapshot_version=1, queue_id=queue_id)


def test_decisions_for_queue_ids(store: Store) -> None:
    rows = [decision("i1", "4ABC12", at=1000.0), decision("i2", "4ABC12", at=50.0),
            decision("i3", "9DEF34", at=2000.0, node="mx2"), decision("i4", None, at=3000.0),
            decision("i5", "777777", at=4000.0)]
    store.add_decisions(rows)
    found = store.decisions_for_queue_ids(["4ABC12", "9DEF34", "NOPE00"], since=100.0)
    assert sorted(found, key=lambda r: r.instance) == [rows[0], rows[2]]
    assert store.decisions_for_queue_ids([], since=0.0) == []
    many = [f"Q{i:05d}" for i in range(1200)] + ["777777"]  # more than one SQL chunk
    assert store.decisions_for_queue_ids(many, since=0.0) == [rows[4]]
