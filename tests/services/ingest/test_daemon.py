"""The ingester as a service: ``run()`` polls until stopped; the pipelined store (a batch
stored on a worker thread while the next is parsed) gives the same events; a store that
fails a write makes the ingester start again from the stored checkpoint, losing and
doubling nothing; the metrics say what happened (lines, events, lag).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from poolwarden.adapters.event_rows import EventRow
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import load_config_text
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.ports import AddResult, Checkpoint, StoredRows
from poolwarden.services.ingest.ingestd import Ingestd
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, generate, observed


class FlakyStore(SqlStore):
    """Fails the n-th batch write (``add_events_at`` or the bulk ``add_event_rows_at``
    the ingester uses), before writing anything."""

    fail_at = 0
    calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StoreError("store: add events failed: disk I/O error (injected)")

    def add_events_at(self, events: Iterable[Event], checkpoint: Checkpoint | None
                      ) -> AddResult:
        self._maybe_fail()
        return super().add_events_at(events, checkpoint)

    def add_event_rows_at(self, rows: Iterable[EventRow], checkpoint: Checkpoint | None
                          ) -> StoredRows:
        self._maybe_fail()
        return super().add_event_rows_at(rows, checkpoint)


def setup(tmp_path: Path) -> tuple[object, str, Path]:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    return load_config_text(config_toml(url), file="pw.toml"), url, tmp_path / "mail.log"


def test_run_polls_until_stopped(tmp_path: Path) -> None:
    config, url, path = setup(tmp_path)
    log = generate(21, 150)
    store = open_store(url)
    store.add_decisions(log.decisions)
    path.touch()
    ingestd = Ingestd(config, store, [path], poll_interval=0.02, rotate_wait=0.0)  # type: ignore[arg-type]

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ingestd.run(stop))
        half = len(log.lines) // 2
        path.write_text("".join(log.lines[:half]))
        await asyncio.sleep(0.2)
        with open(path, "a") as f:
            f.write("".join(log.lines[half:]))
        for _ in range(200):
            if ingestd.metrics.lines_read == len(log.lines):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
        assert observed(read_events(store)) == log.truth()
        m = ingestd.metrics
        assert m.lines_read == len(log.lines) and m.lag_bytes == 0
        assert m.events_stored == sum(log.truth().values()) and m.commits >= 2
    finally:
        store.close()


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_failed_write_restarts_from_the_checkpoint(tmp_path: Path, pipelined: bool) -> None:
    config, url, path = setup(tmp_path)
    log = generate(22, 400)
    open_store(url).close()  # migrated
    store = FlakyStore(create_engine(url))
    store.fail_at = 3
    store.add_decisions(log.decisions)
    path.write_text("".join(log.lines))
    ingestd = Ingestd(config, store, [path], batch_lines=500, chunk_bytes=8192,  # type: ignore[arg-type]
                      rotate_wait=0.0, pipelined=pipelined)
    try:
        ingestd.run_once()  # fails on the third batch: starts over from the checkpoint
        assert ingestd.metrics.errors == 1
        ingestd.run_once()
        assert observed(read_events(store)) == log.truth()
        assert ingestd.metrics.lag_bytes == 0
    finally:
        ingestd.close()
        store.close()


def test_pipelined_ingest_stores_the_same_events(tmp_path: Path) -> None:
    config, url, path = setup(tmp_path)
    log = generate(23, 800)
    store = open_store(url)
    store.add_decisions(log.decisions)
    path.write_text("".join(log.lines))
    ingestd = Ingestd(config, store, [path], batch_lines=300, chunk_bytes=4096,  # type: ignore[arg-type]
                      rotate_wait=0.0, pipelined=True)
    try:
        ingestd.run_once()
        assert observed(read_events(store)) == log.truth()
        assert ingestd.metrics.commits > 10
    finally:
        ingestd.close()
        store.close()
