"""The day counters of the SQLite write path (``adapters.event_rows``): ``fold_rows`` gives
exactly the buckets ``Ledger.add`` fills, and the counters stored through the bulk row path
(``add_event_rows_at``) equal those of the Event path (``add_events_at``), of the memory
store and of a Ledger, both when every row is new (deltas folded by ``fold_rows``) and when
some or all were stored already (folded in SQL over the new ids)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.adapters import event_rows
from poolwarden.adapters.event_rows import (
    CounterDelta,
    EventRow,
    fold_rows,
    python_fold_rows,
    row_of,
)
from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.reputation import ALL_PROVIDERS, Ledger
from poolwarden.ports import Store
from tests.adapters.test_store import (
    Buckets,
    buckets_of_ledger,
    ledger_of,
    random_events,
    stored_buckets,
)

DAY = 86400


def ledger_deltas(events: Sequence[Event]) -> list[CounterDelta]:
    """What ``fold_rows`` must give: the Ledger's buckets as sorted delta tuples."""
    ledger = Ledger()
    for ev in events:
        ledger.add(ev)
    return sorted(((scope.value, scope_id, provider, day, *counts.as_tuple())
                   for scope, scope_id, provider, day, counts in ledger.buckets()),
                  key=lambda delta: (delta[3], *delta[:3]))  # the counters key order


_texts = st.sampled_from(["acme", "globex", "a|b", "ünï", "x" * 40])
_optional = st.one_of(st.none(), st.just(""), st.sampled_from(["192.0.2.1", "2001:db8::7",
                                                               "acme.example", "b.example"]))
_events = st.builds(
    Event,
    key=st.text(min_size=1, max_size=8),
    time=st.floats(min_value=19_000 * DAY, max_value=19_004 * DAY, allow_nan=False),
    kind=st.sampled_from(list(EventKind)),
    tenant=_texts,
    # "*" as a provider counts twice in the same bucket, as Ledger.add does it
    provider=st.sampled_from(["gmail", "yahoo", "other", ALL_PROVIDERS]),
    ip=_optional,
    sending_domain=_optional,
    recipient_domain=st.none(),
    reason=st.just(""),
)


# fold_rows runs the C version when it is built; both must give the Ledger's buckets
FOLDS = [pytest.param(python_fold_rows, id="python"), pytest.param(fold_rows, id="fold_rows")]


@pytest.mark.parametrize("fold", FOLDS)
@settings(max_examples=300, deadline=None)
@given(events=st.lists(_events, max_size=60))
def test_fold_rows_gives_the_ledgers_buckets(
        fold: Callable[[Sequence[EventRow]], list[CounterDelta]], events: list[Event]) -> None:
    out = fold([row_of(ev) for ev in events])
    assert out == ledger_deltas(events)  # same buckets and counts, in key order
    assert len({delta[:4] for delta in out}) == len(out)


@pytest.mark.parametrize("fold", FOLDS)
def test_fold_rows_of_many_rows_and_of_none(
        fold: Callable[[Sequence[EventRow]], list[CounterDelta]]) -> None:
    events = random_events(20_000, seed=5)
    assert fold([row_of(ev) for ev in events]) == ledger_deltas(events)
    assert fold([]) == []
    one_kind = [ev for ev in events if ev.kind is EventKind.HARD_BOUNCE]
    assert fold([row_of(ev) for ev in one_kind]) == ledger_deltas(one_kind)


def test_the_c_fold_is_built_where_a_compiler_is() -> None:
    """setup.py builds it optionally; on a machine with gcc (as ours) it must be there,
    or the speed figures of bench_ingest_synthetic would be of the Python fold."""
    if shutil.which("gcc") is None or os.environ.get("POOLWARDEN_PURE_PYTHON"):
        pytest.skip("no C compiler, or the pure-Python path asked for")
    assert event_rows._native_fold is not None


def _sqlite(tmp_path: Path, name: str) -> SqlStore:
    return open_store(f"sqlite:///{tmp_path / name}")


def _counters(store: Store) -> Buckets:
    return stored_buckets(store)


def test_bulk_rows_and_events_give_the_same_counters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folded: list[int] = []
    real_fold = event_rows.fold_rows

    def spy(rows: Sequence[EventRow]) -> list[CounterDelta]:
        folded.append(len(rows))
        return real_fold(rows)

    monkeypatch.setattr(event_rows, "fold_rows", spy)
    events = random_events(9_000, seed=31)
    # empty IP and domain strings count like missing ones, in Python and in SQL
    events += [Event(key=f"blank{i}", time=20_003 * DAY + i, kind=EventKind.DEFERRED,
                     tenant="acme", provider="gmail", ip="", sending_domain="")
               for i in range(5)]
    first, second = events[:6_000], events[5_000:]  # 1,000 keys in both: the SQL fallback
    batches = [first, second, second, first[:10]]  # then all duplicates, twice
    rows_store, events_store, memory = (_sqlite(tmp_path, "rows.db"),
                                        _sqlite(tmp_path, "events.db"), MemoryStore())
    try:
        added = [rows_store.add_event_rows_at([row_of(ev) for ev in batch], None)
                 for batch in batches]
        assert [len(a) for a in added] == [6_000, len(events) - 6_000, 0, 0]
        assert folded == [6_000]  # in Python only when the whole batch was new
        for batch in batches:
            result = events_store.add_events_at(batch, None)
            assert result == memory.add_events_at(batch, None)
        expected = buckets_of_ledger(ledger_of(events))
        assert _counters(rows_store) == expected
        assert _counters(events_store) == expected
        assert _counters(memory) == expected
        assert rows_store.event_count() == events_store.event_count() == len(events)
    finally:
        rows_store.close()
        events_store.close()


def test_a_batch_larger_than_a_statement_with_in_batch_repeats(tmp_path: Path) -> None:
    events = random_events(7_777, seed=32)  # several statements and an odd remainder
    store = _sqlite(tmp_path, "big.db")
    try:
        rows = [row_of(ev) for ev in events]
        added = store.add_event_rows_at(rows + rows[:50], None)  # repeats: not stored twice
        assert added == rows
        assert _counters(store) == buckets_of_ledger(ledger_of(events))
    finally:
        store.close()


_cells = st.one_of(st.none(), st.sampled_from(["", "a", "b\x00", "acme", "x" * 1100]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(
    st.sampled_from(["k1", "k2", "k3", "k\x00"]), st.just(1.0), st.just(0),
    st.sampled_from(["delivered", "deferred", "hard_bounce", "bogus"]),
    st.sampled_from(["acme", "ac\x00me"]), st.just("google"), _cells, _cells, _cells,
    st.sampled_from(["delivered", "r" * 1025, "ok\x00"])), max_size=8))
def test_unique_rows_is_the_same_with_the_c_scan(
        rows: list[EventRow], monkeypatch_module: pytest.MonkeyPatch) -> None:
    """The C scan (``scan_rows``) only says when nothing needs doing; the rows kept, and
    the error for a row no backend can store, are the Python checks' own."""
    def outcome() -> object:
        try:
            return event_rows.unique_rows(rows)
        except StoreError as exc:
            return str(exc)

    with_scan = outcome()
    monkeypatch_module.setattr(event_rows, "_native_scan", None)
    try:
        assert with_scan == outcome()
    finally:
        monkeypatch_module.undo()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch
