"""The Store contract, run on every backend: SQLite, PostgreSQL and memory.

Idempotent event storage, day counters equal to a Ledger fed the same events,
all-or-nothing writes, tier moves and pins, and (SQL only) the migrations,
the SQLite file settings and the speed of a large batch.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import IntegrityError, OperationalError

from poolwarden.adapters import schema, sqlstore, storable
from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import MIGRATIONS_DIR, SqlStore, open_store
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.model import TenantStanding, Tier
from poolwarden.core.reputation import ALL_PROVIDERS, Ledger, Scope
from poolwarden.core.tiers import TierMove
from poolwarden.ports import AddResult, Store

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
DAY = 86400
FIRST_DAY = 20_000
Buckets = dict[tuple[Scope, str, str, int], tuple[int, ...]]


def event(key: str, kind: str = "delivered", *, tenant: str = "acme", provider: str = "gmail",
          ip: str | None = "192.0.2.1", domain: str | None = "acme.example",
          day: int = FIRST_DAY, reason: str = "") -> Event:
    return Event(key=key, time=day * DAY + 3600.5, kind=EventKind(kind), tenant=tenant,
                 provider=provider, ip=ip, sending_domain=domain,
                 recipient_domain="example.net", reason=reason)


def random_events(count: int, *, seed: int, prefix: str = "e") -> list[Event]:
    rng = random.Random(seed)
    kinds = list(EventKind)
    return [Event(key=f"{prefix}{i}",
                  time=(FIRST_DAY + rng.randrange(12)) * DAY + rng.random() * DAY,
                  kind=rng.choices(kinds, weights=[20, 3, 2, 2, 1, 1])[0],
                  tenant=rng.choice(["acme", "globex", "initech", "umbrella", "hooli"]),
                  provider=rng.choice(["gmail", "yahoo", "microsoft", "other"]),
                  ip=rng.choice([None, "192.0.2.1", "192.0.2.2", "198.51.100.7"]),
                  sending_domain=rng.choice([None, "a.example", "b.example", "c.example"]),
                  recipient_domain=rng.choice([None, "gmail.com", "example.org"]),
                  reason=rng.choice(["", "550 5.1.1 user unknown", "421 try later"]))
            for i in range(count)]


def buckets_of_ledger(ledger: Ledger, since_day: int = 0) -> Buckets:
    return {(scope, scope_id, provider, day): counts.as_tuple()
            for scope, scope_id, provider, day, counts in ledger.buckets()
            if day >= since_day and any(counts.as_tuple())}


def stored_buckets(store: Store, since_day: int = 0) -> Buckets:
    found: Buckets = {}
    for row in store.counters(since_day=since_day):
        key = (row.scope, row.scope_id, row.provider, row.day)
        assert key not in found, f"counter row {key} listed twice"
        assert isinstance(row.scope, Scope)
        found[key] = row.counts.as_tuple()
    return found


def ledger_of(events: Sequence[Event]) -> Ledger:
    ledger = Ledger()
    for ev in events:
        ledger.add(ev)
    return ledger


def move(tenant: str, before: Tier, after: Tier, *, at: float, rule: str = "hard_bounce_risky",
         pinned: bool = False, actor: str = "poolwarden", source: str = "engine",
         reason: str = "moved", metrics: dict[str, Any] | None = None) -> TierMove:
    return TierMove(tenant=tenant, before=before, after=after, at=at, rule=rule, reason=reason,
                    actor=actor, source=source, metrics=metrics or {},
                    thresholds={"hard_bounce_risky": 0.02, "window_days": 7}, pinned=pinned)


def load_ledger(store: Store, since_day: int) -> Ledger:
    assert isinstance(store, SqlStore | MemoryStore)
    return store.load_ledger(since_day)


# -- events and counters ------------------------------------------------------


def test_adding_the_same_batch_twice_stores_it_once(store: Store) -> None:
    batch = random_events(60, seed=1)
    first = store.add_events(batch)
    assert (first.added, first.duplicates) == (60, 0)
    assert first.added_events == tuple(batch)
    after_first = stored_buckets(store)
    assert after_first == buckets_of_ledger(ledger_of(batch))

    again = store.add_events(iter(batch))  # any iterable, consumed once
    assert (again.added, again.duplicates, again.added_events) == (0, 60, ())
    assert stored_buckets(store) == after_first
    assert store.event_count() == 60


def test_duplicates_inside_one_batch_count_once(store: Store) -> None:
    a, b, c = event("a"), event("b", "hard_bounce"), event("c", "complaint")
    a_again = event("a", "trap_hit")  # same key, other content: the first one stands
    result = store.add_events([a, b, a_again, c, b])
    assert (result.added, result.duplicates) == (3, 2)
    assert result.added_events == (a, b, c)
    assert stored_buckets(store) == buckets_of_ledger(ledger_of([a, b, c]))
    tenant_all = stored_buckets(store)[(Scope.TENANT, "acme", ALL_PROVIDERS, FIRST_DAY)]
    assert tenant_all == (1, 0, 1, 0, 1, 0)

    d = event("d", "deferred")
    partial = store.add_events([c, d, d])
    assert (partial.added, partial.duplicates, partial.added_events) == (1, 2, (d,))
    assert store.event_count() == 4
    assert stored_buckets(store) == buckets_of_ledger(ledger_of([a, b, c, d]))


def test_empty_batch(store: Store) -> None:
    assert store.add_events([]) == AddResult(added=0, duplicates=0, added_events=())
    assert store.event_count() == 0
    assert list(store.counters(since_day=0)) == []


def test_counters_equal_a_ledger_fed_the_same_events(store: Store) -> None:
    events = random_events(3000, seed=7)
    # Overlapping batches, one larger than a statement chunk, with repeats.
    batches = [events[:1200], events[1000:1700], events[1700:], events[::7]]
    added: list[Event] = []
    for batch in batches:
        added.extend(store.add_events(batch).added_events)
    assert sorted(ev.key for ev in added) == sorted(ev.key for ev in events)
    assert store.event_count() == 3000

    expected = ledger_of(events)
    assert stored_buckets(store) == buckets_of_ledger(expected)
    loaded = load_ledger(store, FIRST_DAY)
    end = FIRST_DAY + 11
    probes = [(Scope.TENANT, "acme"), (Scope.TENANT, "hooli"), (Scope.IP, "192.0.2.2"),
              (Scope.DOMAIN, "b.example"), (Scope.IP_TENANT, "198.51.100.7|globex")]
    for scope, scope_id in probes:
        for provider in (ALL_PROVIDERS, "gmail", "other"):
            for days in (1, 7, 12):
                want = expected.window(scope, scope_id, end_day=end, days=days,
                                       provider=provider)
                got = loaded.window(scope, scope_id, end_day=end, days=days, provider=provider)
                assert got == want, (scope, scope_id, provider, days)
        assert loaded.providers_of(scope, scope_id) == expected.providers_of(scope, scope_id)
    assert loaded.tenants_on_ip("192.0.2.1") == expected.tenants_on_ip("192.0.2.1")
    assert expected.window(Scope.TENANT, "acme", end_day=end, days=12).volume > 0


def test_counters_since_day_leaves_out_older_days(store: Store) -> None:
    events = random_events(500, seed=3)
    store.add_events(events)
    since = FIRST_DAY + 6
    assert stored_buckets(store, since) == buckets_of_ledger(ledger_of(events), since)
    assert all(row.day >= since for row in store.counters(since_day=since))
    assert stored_buckets(store, since) != stored_buckets(store, 0)
    assert buckets_of_ledger(load_ledger(store, since)) == stored_buckets(store, since)


@pytest.mark.parametrize(("field", "value"), [
    ("reason", "x" * (storable.MAX_REASON_LENGTH + 1)),
    ("tenant", "ac\x00me"),
])
def test_an_unstorable_event_rejects_the_whole_batch(store: Store, field: str,
                                                     value: str) -> None:
    store.add_events([event("before")])
    good = random_events(700, seed=5)
    bad = replace(good[0], key="bad", **{field: value})
    with pytest.raises(StoreError, match="bad"):
        store.add_events([*good, bad])
    assert store.event_count() == 1
    assert stored_buckets(store) == buckets_of_ledger(ledger_of([event("before")]))


def test_reason_limit_matches_the_schema() -> None:
    assert schema.events.c.reason.type.length == storable.MAX_REASON_LENGTH


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_database_error_mid_batch_rolls_back_everything(
        sql_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    before = random_events(50, seed=11, prefix="old")
    sql_store.add_events(before)
    baseline = stored_buckets(sql_store)
    # 6000 events: several statements on both backends; the bad row is in a later one.
    batch = random_events(6000, seed=12, prefix="new")
    real_row = sqlstore._event_row

    def row_with_a_null_tenant(ev: Event) -> dict[str, Any]:
        row = real_row(ev)
        if ev.key == "new999":  # sorts after "new5…", i.e. in the last statement
            row["tenant"] = None  # NOT NULL: the database itself refuses it
        return row

    monkeypatch.setattr(sqlstore, "_event_row", row_with_a_null_tenant)
    with pytest.raises(StoreError, match="add events failed") as caught:
        sql_store.add_events([*before[:10], *batch])
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert sql_store.event_count() == 50
    assert stored_buckets(sql_store) == baseline

    monkeypatch.undo()
    result = sql_store.add_events([*before[:10], *batch])
    assert (result.added, result.duplicates) == (6000, 10)
    assert stored_buckets(sql_store) == buckets_of_ledger(ledger_of([*before, *batch]))


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_failure_after_the_counters_were_written_rolls_back(
        sql_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sql_store.add_events([event("first")])
    baseline = stored_buckets(sql_store)
    real_upsert = SqlStore._upsert_counters

    def upsert_then_fail(self: SqlStore, conn: Connection, delta: Ledger) -> None:
        real_upsert(self, conn, delta)
        raise OperationalError("UPDATE counters", {}, Exception("disk I/O error"))

    monkeypatch.setattr(SqlStore, "_upsert_counters", upsert_then_fail)
    with pytest.raises(StoreError, match="disk I/O error") as caught:
        sql_store.add_events(random_events(1200, seed=2))
    assert isinstance(caught.value.__cause__, OperationalError)
    assert sql_store.event_count() == 1
    assert stored_buckets(sql_store) == baseline


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_concurrent_writers_store_each_event_once(make_store: Callable[[], Store]) -> None:
    events = random_events(3000, seed=21)
    writers = 4
    stores = [make_store() for _ in range(writers)]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []
    added = [0] * writers

    def write(index: int) -> None:
        mine = list(events)
        random.Random(index).shuffle(mine)  # the same events in another order each
        try:
            start.wait()
            for begin in range(0, len(mine), 1000):
                added[index] += stores[index].add_events(mine[begin:begin + 1000]).added
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(added) == 3000
    assert stores[0].event_count() == 3000
    assert stored_buckets(stores[1]) == buckets_of_ledger(ledger_of(events))


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_a_hundred_thousand_events_take_seconds(sql_store: SqlStore) -> None:
    events = random_events(100_000, seed=4)
    started = time.perf_counter()
    result = sql_store.add_events(events)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = sql_store.add_events(events)
    second = time.perf_counter() - started
    assert (result.added, again.duplicates) == (100_000, 100_000)
    assert first < 20, f"adding took {first:.1f}s"
    assert second < 20, f"adding again took {second:.1f}s"


# -- standings and tier moves -------------------------------------------------


def test_moves_and_standings_round_trip(store: Store) -> None:
    evidence = {"window": {"days": 7, "counts": [900, 3, 40, 2, 1, 0],
                           "hard_bounce_rate": {"value": 0.0425, "sufficient": True}},
                "findings": [{"rule": "hard_bounce_risky", "tier": "risky"}],
                "note": "Überprüft — ✓", "nothing": None}
    first = [move("acme", Tier.NEW, Tier.RISKY, at=1000.0, metrics=evidence),
             move("globex", Tier.NEW, Tier.GOOD, at=1000.0, rule="proven"),
             move("acme", Tier.RISKY, Tier.SUSPENDED, at=1000.0)]  # same time: order kept
    store.record_moves(first)
    later = move("globex", Tier.GOOD, Tier.RISKY, at=2000.5)
    store.record_moves([later])
    store.record_moves([])

    assert store.standings() == {
        "acme": TenantStanding(tier=Tier.SUSPENDED, since=1000.0),
        "globex": TenantStanding(tier=Tier.RISKY, since=2000.5),
    }
    every = store.moves()
    assert every == [later, first[2], first[1], first[0]]
    assert every[3].metrics == evidence
    assert every[3].thresholds == {"hard_bounce_risky": 0.02, "window_days": 7}
    assert all(isinstance(m.before, Tier) and isinstance(m.after, Tier) for m in every)
    assert store.moves("acme") == [first[2], first[0]]
    assert store.moves("acme", limit=1) == [first[2]]
    assert store.moves(limit=2) == [later, first[2]]
    assert store.moves("nobody") == []

    every[3].metrics["note"] = "changed by a caller"  # handed-out values are copies
    assert store.moves("acme")[1].metrics == evidence


def test_unstorable_move_evidence_rolls_back(store: Store) -> None:
    good = move("acme", Tier.NEW, Tier.GOOD, at=1.0)
    for bad_metrics in ({"when": object()}, {"rate": math.nan}):
        with pytest.raises(StoreError):
            store.record_moves([good, move("globex", Tier.NEW, Tier.RISKY, at=2.0,
                                           metrics=bad_metrics)])
    assert store.moves() == []
    assert store.standings() == {}


def test_a_pin_is_recorded_and_cleared(store: Store) -> None:
    store.record_moves([move("acme", Tier.NEW, Tier.RISKY, at=100.0)])
    pin = move("acme", Tier.RISKY, Tier.GOOD, at=200.0, rule="override", pinned=True,
               actor="alice", source="cli", reason="known good sender")
    store.record_moves([pin])
    assert store.standings()["acme"] == TenantStanding(
        tier=Tier.GOOD, since=200.0, pinned=True, pinned_by="alice",
        pinned_why="known good sender")

    store.clear_pin("acme", actor="bob", why="review done", at=300.0, source="web")
    assert store.standings()["acme"] == TenantStanding(tier=Tier.GOOD, since=200.0)
    cleared = store.moves("acme")[0]
    assert cleared == TierMove(tenant="acme", before=Tier.GOOD, after=Tier.GOOD, at=300.0,
                               rule="override_cleared", reason="review done", actor="bob",
                               source="web", metrics={}, thresholds={}, pinned=False)
    assert not cleared.automatic

    # Nothing to clear: no pin, or no tenant at all.
    store.clear_pin("acme", actor="bob", why="again", at=400.0, source="web")
    store.clear_pin("nobody", actor="bob", why="?", at=400.0, source="web")
    assert len(store.moves()) == 3
    assert "nobody" not in store.standings()

    store.record_moves([move("acme", Tier.GOOD, Tier.RISKY, at=500.0)])
    assert store.standings()["acme"] == TenantStanding(tier=Tier.RISKY, since=500.0)


# -- SQL only: migrations, files, connections -----------------------------------


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_migrations_build_exactly_the_schema(sql_store: SqlStore) -> None:
    with sql_store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
        assert compare_metadata(context, schema.metadata) == []
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        assert context.get_current_revision() == ScriptDirectory.from_config(
            config).get_current_head()
        inspector = inspect(conn)
        assert set(inspector.get_table_names()) == {*schema.metadata.tables, "alembic_version"}
        # Alembic's type comparison ignores a width missing on one side: check widths here.
        for table in schema.metadata.sorted_tables:
            widths = {c["name"]: getattr(c["type"], "length", None)
                      for c in inspector.get_columns(table.name)}
            assert widths == {c.name: getattr(c.type, "length", None) for c in table.columns}
    sql_store.migrate()  # at head already: nothing to do, no error


def test_reopening_a_sqlite_file_keeps_the_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(url)
    events = random_events(40, seed=9)
    store.add_events(events)
    pin = move("acme", Tier.NEW, Tier.GOOD, at=5.0, pinned=True, actor="alice")
    store.record_moves([pin])
    store.close()

    reopened = open_store(url)
    try:
        assert reopened.event_count() == 40
        assert stored_buckets(reopened) == buckets_of_ledger(ledger_of(events))
        assert reopened.moves() == [pin]
        assert reopened.standings()["acme"].pinned_by == "alice"
        assert reopened.add_events(events).duplicates == 40
    finally:
        reopened.close()


def test_sqlite_files_use_wal_and_the_connection_settings(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = open_store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            def pragma(name: str) -> Any:
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == sqlstore.SQLITE_BUSY_TIMEOUT_MS
    finally:
        store.close()
    raw = sqlite3.connect(path)  # WAL is a property of the file: any reader sees it
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    open_store(url).close()
    raw = sqlite3.connect(tmp_path / "future.db")
    with raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    raw.close()
    with pytest.raises(StoreError, match="migrate"):
        open_store(url)


@pytest.mark.parametrize("url", [
    "nosuchdialect://x",
    "sqlite:////nonexistent-directory/poolwarden.db",
    pytest.param("postgresql+psycopg://postgres@127.0.0.1:1/postgres", id="pg-closed-port"),
])
def test_an_unusable_database_raises_store_error(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)

