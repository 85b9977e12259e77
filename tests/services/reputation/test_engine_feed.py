"""The long-lived reputation engine: loaded once, then kept in step by the counter deltas of
each stored batch (``feed``), never by re-reading the store; ``reconcile`` re-reads it.
In ``poolwarden serve`` one engine lives for the whole run and the log follower and the
feedback listener feed it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import LoadedConfig, load_config_text
from poolwarden.core.counters import event_deltas
from poolwarden.core.events import EventKind
from poolwarden.core.reputation import Scope
from poolwarden.services.reputation import engine as engine_module
from poolwarden.services.reputation.engine import Engine
from poolwarden.services.runtime import Runtime
from poolwarden.testing.builders import event, many
from tests.adapters.test_store import buckets_of_ledger
from tests.services.feedback.support import EXAMPLE, NOW
from tests.services.ingest.test_ingest_jobs import generate, run, until, write_config

DAY = 86400


@pytest.fixture
def config() -> LoadedConfig:
    return load_config_text(EXAMPLE.read_text(), file="poolwarden.toml")


def test_fed_deltas_keep_the_engine_in_step_without_reading_the_store(
        config: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    engine = Engine(config, store, now=NOW)
    reads: list[int] = []
    real_counters = store.counters
    monkeypatch.setattr(store, "counters", lambda **kw: reads.append(1) or real_counters(**kw))
    at = NOW - 3600
    batch = [*many(EventKind.DELIVERED, 30, tenant="bigretail", time=at),
             *many(EventKind.HARD_BOUNCE, 4, tenant="bigretail", time=at)]
    result = store.add_events(batch)  # stored by someone else: the engine does not know
    assert engine.ledger.window(Scope.TENANT, "bigretail", end_day=int(NOW // DAY),
                                days=1).volume == 0
    assert list(result.deltas) == event_deltas(batch)
    engine.feed(result.deltas)
    again = store.add_events(batch)  # duplicates: stored and counted once
    assert again.added == 0 and again.deltas == ()
    engine.feed(again.deltas)
    counts = engine.ledger.window(Scope.TENANT, "bigretail", end_day=int(NOW // DAY), days=1)
    assert (counts.delivered, counts.hard_bounces) == (30, 4)
    engine.evaluate(NOW)
    engine.snapshot(NOW)
    assert reads == []  # fed, evaluated and snapshotted without re-reading the counters
    fresh = Engine(config, store, now=NOW)
    assert buckets_of_ledger(engine.ledger) == buckets_of_ledger(fresh.ledger)


def test_add_events_and_views_on_other_stores_feed_the_same_ledger(
        config: LoadedConfig) -> None:
    store = MemoryStore()
    engine = Engine(config, store, now=NOW)
    engine.add_events(many(EventKind.DELIVERED, 5, tenant="bigretail", time=NOW))
    view = engine.bound_to(store)
    assert view.store is store and view.ledger is engine.ledger
    view.add_events([event(EventKind.COMPLAINT, tenant="bigretail", time=NOW)])
    counts = engine.ledger.window(Scope.TENANT, "bigretail", end_day=int(NOW // DAY), days=1)
    assert (counts.delivered, counts.complaints) == (5, 1)


def test_reconcile_replaces_the_ledger_with_the_stored_counters(config: LoadedConfig) -> None:
    store = MemoryStore()
    engine = Engine(config, store, now=None)
    assert not engine.loaded and list(engine.ledger.buckets()) == []
    result = store.add_events(many(EventKind.DELIVERED, 3, tenant="bigretail", time=NOW))
    engine.feed(result.deltas)  # fed before the load: the load reads them from the store
    engine.reconcile(NOW)
    assert engine.loaded
    assert engine.ledger.window(Scope.TENANT, "bigretail", end_day=int(NOW // DAY),
                                days=1).delivered == 3
    old = store.add_events([event(EventKind.DELIVERED, tenant="bigretail",
                                  time=NOW - 400 * DAY)])
    engine.feed(old.deltas)
    assert engine.ledger.first_day(Scope.TENANT, "bigretail") == int((NOW - 400 * DAY) // DAY)
    engine.evaluate(NOW)  # a long-lived ledger forgets what left the retention window
    assert engine.ledger.first_day(Scope.TENANT, "bigretail") == int(NOW // DAY)


def test_serve_keeps_one_engine_fed_by_the_follower(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real_init = engine_module.Engine.__init__

    def counting(self: Engine, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(engine_module.Engine, "__init__", counting)
    config_path = write_config(tmp_path)
    log = generate(31, 200)
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    store.add_decisions(log.decisions)
    store.close()
    maillog = tmp_path / "mail.log"
    maillog.touch()

    async def body(runtime: Runtime) -> None:
        jobs = runtime.ingest
        await until(lambda: jobs.ingestd is not None, "the follower")
        maillog.write_text("".join(log.lines))  # after the engine was loaded at start
        await until(lambda: jobs.ingestd is not None and jobs.ingestd.metrics.lines_read
                    == len(log.lines), "the whole log")
        await runtime.rebuild("test")
        await runtime.rebuild("test")

    runtime = run(config_path, body)  # stopping commits the follower's last batch
    assert built == [runtime.engine]  # one engine for the run: no rebuild per tick
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        assert store.event_count() > 0
        fresh = Engine(runtime.config, store, now=time.time())
        assert buckets_of_ledger(runtime.engine.ledger) == buckets_of_ledger(fresh.ledger)
    finally:
        store.close()
