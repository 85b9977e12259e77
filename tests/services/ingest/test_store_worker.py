"""The store worker process (``services.ingest.store_worker``): batches stored by a child
process give exactly the events of the in-process store; a worker killed between batches
is replaced, losing and doubling nothing; one that dies holding a batch is a
``StoreError``, as a store error in the child is (with its message); only a plain SQLite
file store gets a worker."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.core.counters import counter_deltas
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.services.ingest.ingestd import Ingestd
from poolwarden.services.ingest.log_import import import_logs
from poolwarden.services.ingest.store_worker import StoreWorker, worker_url
from poolwarden.wire.postfix_correlate import Delivery
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, generate, observed


def _setup(tmp_path: Path, seed: int, messages: int) -> tuple[object, str, Path, object]:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file="pw.toml")
    log = generate(seed, messages)
    store = open_store(url)
    store.add_decisions(log.decisions)
    store.close()
    path = tmp_path / "mail.log"
    path.write_text("".join(log.lines))
    return config, url, path, log


def test_the_worker_stores_what_the_thread_stores(tmp_path: Path) -> None:
    config, url, path, log = _setup(tmp_path, 41, 900)
    batches: list[tuple[int, int]] = []

    def on_batch(deliveries: Sequence[Delivery], events: Sequence[Event]) -> None:
        assert [d.key for d in deliveries] == [e.key for e in events]
        batches.append((len(deliveries), len(events)))

    store = open_store(url)
    ingestd = Ingestd(config, store, [path], batch_lines=700, chunk_bytes=8192,  # type: ignore[arg-type]
                      rotate_wait=0.0, pipelined=True, store_process=True,
                      on_batch=on_batch)
    try:
        ingestd.run_once()
        assert ingestd._worker is not None and ingestd._worker._process.pid != os.getpid()
        events = read_events(store)
        assert observed(events) == log.truth()  # type: ignore[attr-defined]
        assert ingestd.metrics.events_stored == len(events) == sum(n for _, n in batches)
        assert ingestd.metrics.commits > 5
        # the same lines again under another name: every key is stored already
        copy = tmp_path / "copy.log"
        copy.write_bytes(path.read_bytes())
        again = Ingestd(config, store, [copy], batch_lines=700, rotate_wait=0.0,  # type: ignore[arg-type]
                        pipelined=True, store_process=True, on_batch=on_batch)
        try:
            before = len(batches)
            again.run_once()
            assert again.metrics.events_stored == 0
            assert again.metrics.duplicates == len(events)
            assert len(batches) == before  # nothing new: no callback
        finally:
            again.close()
    finally:
        ingestd.close()
        store.close()


def test_a_killed_worker_is_replaced_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    config, url, path, log = _setup(tmp_path, 42, 900)
    store = open_store(url)
    killed: list[int] = []

    def hook(point: str) -> None:
        worker = ingestd._worker
        if point == "committed" and not killed and worker is not None:
            killed.append(worker._process.pid)
            os.kill(worker._process.pid, signal.SIGKILL)
            worker._process.wait(10)

    ingestd = Ingestd(config, store, [path], batch_lines=500, chunk_bytes=8192,  # type: ignore[arg-type]
                      rotate_wait=0.0, pipelined=True, store_process=True, hook=hook)
    try:
        ingestd.run_once()  # the next batch finds the worker gone: a new one stores it
        assert killed and ingestd.metrics.errors == 0
        assert ingestd._worker is not None and ingestd._worker._process.pid != killed[0]
        assert observed(read_events(store)) == log.truth()  # type: ignore[attr-defined]
        assert ingestd.metrics.lag_bytes == 0
    finally:
        ingestd.close()
        store.close()


def test_a_worker_dying_mid_batch_is_a_store_error(tmp_path: Path) -> None:
    """What the ingester then does with it (start over from the checkpoint) is the same as
    for any failed write: tests/services/ingest/test_daemon.py."""
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    open_store(url).close()
    worker = StoreWorker(url)
    try:
        worker.wait_ready()
        os.kill(worker._process.pid, signal.SIGKILL)
        worker._process.wait(10)
        row = ("k1", 1.0, 0, "delivered", "acme", "google", None, None, None, "delivered")
        with pytest.raises(StoreError, match="store worker .* is gone"):
            worker.add_rows([row], None)
    finally:
        worker.close()
    store = open_store(url)
    try:
        assert store.event_count() == 0
    finally:
        store.close()


def test_a_store_error_in_the_worker_reaches_the_parent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    open_store(url).close()
    worker = StoreWorker(url)
    try:
        bad = ("k1", 1.0, 0, "delivered", "acme\x00", "google", None, None, None, "delivered")
        with pytest.raises(StoreError, match="NUL|\\\\x00|character"):
            worker.add_rows([bad], None)
        good = ("k2", 1.0, 0, "delivered", "acme", "google", None, None, None, "delivered")
        stored = worker.add_rows([good, good], None)
        assert stored.added == [good]  # a key twice: stored once, counted once
        assert stored.deltas == counter_deltas([good])
        again = worker.add_rows([good], None)
        assert again.added == [] and again.deltas == []
    finally:
        worker.close()
    assert not worker.alive


def test_import_logs_through_the_worker(tmp_path: Path) -> None:
    config, url, path, log = _setup(tmp_path, 43, 500)
    store = open_store(url)
    try:
        result = import_logs(config, store, [path], batch_lines=600, pipelined=True,  # type: ignore[arg-type]
                             store_process=True)
        assert observed(read_events(store)) == log.truth()  # type: ignore[attr-defined]
        assert result.metrics.events_stored == len(read_events(store))
    finally:
        store.close()


def test_only_a_plain_sqlite_file_store_gets_a_worker(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    memory_db = open_store("sqlite://")
    try:
        assert worker_url(store) == f"sqlite:///{tmp_path / 'pw.db'}"
        assert worker_url(memory_db) is None
        assert worker_url(MemoryStore()) is None
    finally:
        store.close()
        memory_db.close()
