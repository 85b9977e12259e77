"""The ingest's bulk write path (``SqlStore.add_event_rows_at``, ``adapters.event_rows``)
stores what ``add_events_at`` stores: the same events, the same day counters (every scope
``Ledger.add`` fills, with and without an IP and a sending domain, every kind), the same
duplicates skipped (in the batch and across batches), the checkpoint in the same
transaction, and the same refusals; on SQLite and PostgreSQL."""

from __future__ import annotations

import random

import pytest

from poolwarden.adapters.event_rows import EventRow, row_of
from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.ports import Checkpoint
from tests.services.ingest.conftest import read_events


def _events(seed: int, n: int) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(Event(
            key=f"pflog:{rng.getrandbits(128):032x}", time=1_795_392_000.0 + rng.randrange(
                3 * 86400) + i / 1000, kind=rng.choice(list(EventKind)),
            tenant=rng.choice(["acme", "globex", "initech"]),
            provider=rng.choice(["google", "microsoft", "other"]),
            ip=rng.choice([None, "192.0.2.1", "192.0.2.2", "2001:db8::7"]),
            sending_domain=rng.choice([None, "acme.example", "globex.example"]),
            recipient_domain=rng.choice([None, "gmail.com", "corp.example"]),
            reason=rng.choice(["delivered", "userunknown", "blocked", ""])))
    return out


def _checkpoint(offset: int) -> Checkpoint:
    return Checkpoint(source="/var/log/mail.log", fingerprint="fp", inode=7, device=8,
                      offset=offset, resume_offset=offset, updated_at=1.0, mtime=2.0,
                      resume_fingerprint=None, year=2026, month=11)


def _counters(store: SqlStore | MemoryStore) -> set[tuple[object, ...]]:
    return {(c.scope, c.scope_id, c.provider, c.day, c.counts.as_tuple())
            for c in store.counters(since_day=0)}


def test_bulk_rows_store_what_events_store(store_url: str, tmp_path: object) -> None:
    events = _events(1, 3000)
    first, second = events[:2000], events[1500:]  # 500 keys in both batches
    batch2 = [row_of(e) for e in second] + [row_of(second[0]), row_of(second[7])]  # + in-batch
    reference = MemoryStore()
    reference.add_events_at(first, None)
    reference.add_events_at(second, None)
    store = open_store(store_url)
    try:
        assert isinstance(store, SqlStore)
        added = store.add_event_rows_at([row_of(e) for e in first], _checkpoint(10)).added
        assert added == [row_of(e) for e in first]
        added = store.add_event_rows_at(batch2, _checkpoint(20)).added
        assert added == [row_of(e) for e in events[2000:]]  # the new ones, in batch order
        assert sorted(read_events(store), key=lambda e: e.key) == sorted(events,
                                                                        key=lambda e: e.key)
        assert _counters(store) == _counters(reference)
        cp = store.checkpoint("/var/log/mail.log")
        assert cp is not None and cp.offset == 20
        again = store.add_event_rows_at(batch2, _checkpoint(30))
        assert again.added == [] and again.deltas == []  # all duplicates: nothing counted
        assert _counters(store) == _counters(reference)
        # refused like add_events_at: nothing of the batch, not the checkpoint, is stored
        bad: EventRow = (*row_of(_events(2, 1)[0])[:9], "x" * 1025)  # type: ignore[assignment]
        nul: EventRow = (*row_of(_events(3, 1)[0])[:4], "ac\x00me",  # type: ignore[assignment]
                         *row_of(_events(3, 1)[0])[5:])
        for wrong in (bad, nul):
            with pytest.raises(StoreError):
                store.add_event_rows_at([row_of(e) for e in _events(4, 5)] + [wrong],
                                        _checkpoint(40))
        with pytest.raises(StoreError, match="unknown event kind"):
            store.add_event_rows_at([(*row_of(events[0])[:3], "spam",  # type: ignore[list-item]
                                      *row_of(events[0])[4:])], None)
        assert store.checkpoint("/var/log/mail.log").offset == 30  # type: ignore[union-attr]
        assert len(read_events(store)) == len(events)
    finally:
        store.close()
