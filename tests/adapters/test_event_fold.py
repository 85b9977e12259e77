"""The day counters of the store write paths: the core's rule (``core.counters``) gives
exactly the buckets a per-event reading of it fills, the ``Ledger`` applies the same, and
the counters stored through the bulk row path (``add_event_rows_at``) equal those of the
Event path (``add_events_at``), of the memory store and of a Ledger, both when every row
is new and when some or all were stored already: only the new rows feed deltas, and the
deltas each store reports are the core's deltas of exactly those."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.adapters import event_rows
from poolwarden.adapters.event_rows import unique_rows
from poolwarden.adapters.memory import MemoryStore
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.adapters.storable import unique_by_key
from poolwarden.core.counters import (
    COUNT_FIELDS,
    CounterDelta,
    EventRow,
    counter_deltas,
    event_deltas,
    event_of,
    row_of,
)
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
# the field of each kind, spelled out here independently of the code under test
_FIELD = {EventKind.DELIVERED: "delivered", EventKind.DEFERRED: "deferred",
          EventKind.HARD_BOUNCE: "hard_bounces", EventKind.SOFT_BOUNCE: "soft_bounces",
          EventKind.COMPLAINT: "complaints", EventKind.TRAP_HIT: "trap_hits"}


def reference_deltas(events: Sequence[Event]) -> list[CounterDelta]:
    """The rule read one event at a time: the tenant; the IP and IP|tenant when there is an
    IP; the sending domain when there is one; each for the provider and for ``*``."""
    counts: Counter[tuple[str, str, str, int, str]] = Counter()
    for ev in events:
        scopes = [("tenant", ev.tenant)]
        if ev.ip:
            scopes += [("ip", ev.ip), ("ip_tenant", f"{ev.ip}|{ev.tenant}")]
        if ev.sending_domain:
            scopes.append(("domain", ev.sending_domain))
        for scope, scope_id in scopes:
            for provider in (ev.provider, ALL_PROVIDERS):
                counts[(scope, scope_id, provider, ev.day, _FIELD[ev.kind])] += 1
    buckets: dict[tuple[str, str, str, int], list[int]] = {}
    for (scope, scope_id, provider, day, name), n in counts.items():
        buckets.setdefault((scope, scope_id, provider, day),
                           [0] * len(COUNT_FIELDS))[COUNT_FIELDS.index(name)] += n
    return sorted(((*key, *values) for key, values in buckets.items()),
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
    # "*" as a provider counts twice in the same bucket
    provider=st.sampled_from(["gmail", "yahoo", "other", ALL_PROVIDERS]),
    ip=_optional,
    sending_domain=_optional,
    recipient_domain=st.none(),
    reason=st.just(""),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_events, max_size=60))
def test_counter_deltas_give_the_rules_buckets(events: list[Event]) -> None:
    out = counter_deltas([row_of(ev) for ev in events])
    assert out == reference_deltas(events)  # same buckets and counts, in key order
    assert len({delta[:4] for delta in out}) == len(out)
    # the Ledger applies exactly those: per event or as a batch
    assert buckets_of_ledger(ledger_of(events)) == _as_buckets(out)
    batch = Ledger()
    batch.add_rows([row_of(ev) for ev in events])
    assert buckets_of_ledger(batch) == _as_buckets(out)


def _as_buckets(deltas: Sequence[CounterDelta]) -> Buckets:
    from poolwarden.core.reputation import Scope

    return {(Scope(d[0]), d[1], d[2], d[3]): tuple(d[4:]) for d in deltas if any(d[4:])}


def test_counter_deltas_of_many_rows_and_of_none() -> None:
    events = random_events(20_000, seed=5)
    assert counter_deltas([row_of(ev) for ev in events]) == reference_deltas(events)
    assert event_deltas(events) == reference_deltas(events)
    assert counter_deltas([]) == []
    one_kind = [ev for ev in events if ev.kind is EventKind.HARD_BOUNCE]
    assert counter_deltas([row_of(ev) for ev in one_kind]) == reference_deltas(one_kind)


def test_no_adapter_carries_a_counter_rule_of_its_own() -> None:
    """The SQL adapter stores deltas: no GROUP BY fold, no C fold, no kind-to-field map."""
    source = Path(event_rows.__file__).read_text(encoding="utf-8")
    assert "GROUP BY" not in source and "_fold_fast" not in source
    assert not list(Path(event_rows.__file__).parent.glob("_fold_fast*"))


def _sqlite(tmp_path: Path, name: str) -> SqlStore:
    return open_store(f"sqlite:///{tmp_path / name}")


def _counters(store: Store) -> Buckets:
    return stored_buckets(store)


def test_bulk_rows_and_events_give_the_same_counters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folded: list[int] = []

    def spy(rows: Sequence[EventRow]) -> list[CounterDelta]:
        folded.append(len(rows))
        return counter_deltas(rows)

    monkeypatch.setattr(event_rows, "counter_deltas", spy)
    events = random_events(9_000, seed=31)
    # empty IP and domain strings count like missing ones, in Python and in SQL
    events += [Event(key=f"blank{i}", time=20_003 * DAY + i, kind=EventKind.DEFERRED,
                     tenant="acme", provider="gmail", ip="", sending_domain="")
               for i in range(5)]
    first, second = events[:6_000], events[5_000:]  # 1,000 keys in both: some new, some not
    batches = [first, second, second, first[:10]]  # then all duplicates, twice
    rows_store, events_store, memory = (_sqlite(tmp_path, "rows.db"),
                                        _sqlite(tmp_path, "events.db"), MemoryStore())
    try:
        added = [rows_store.add_event_rows_at([row_of(ev) for ev in batch], None)
                 for batch in batches]
        assert [len(a.added) for a in added] == [6_000, len(events) - 6_000, 0, 0]
        # the core folds exactly the new rows of each batch, and nothing else
        assert folded == [6_000, len(events) - 6_000, 0, 0]
        for stored in added:
            assert stored.deltas == counter_deltas(stored.added)
        for batch in batches:
            result = events_store.add_events_at(batch, None)
            assert result == memory.add_events_at(batch, None)
            assert list(result.deltas) == event_deltas(result.added_events)
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
        assert added.added == rows
        assert added.deltas == counter_deltas(rows)
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
def test_unique_rows_refuses_what_unique_by_key_refuses(rows: list[EventRow]) -> None:
    """The rows kept, and the error for a row no backend can store, are those of the Event
    path's checks (``unique_by_key``); an unknown kind is refused by name."""
    def outcome() -> object:
        try:
            return unique_rows(rows)
        except StoreError as exc:
            return str(exc)

    def expected() -> object:
        unknown = sorted({row[3] for row in rows} - {kind.value for kind in EventKind})
        if unknown:
            return f"store: unknown event kind {unknown[0][:40]!r}"
        try:
            return [row_of(ev) for ev in unique_by_key([event_of(row) for row in rows])]
        except StoreError as exc:
            return str(exc)

    got, want = outcome(), expected()
    if isinstance(want, list):  # rows keep their own day column; keys and order must match
        assert isinstance(got, list)
        assert [row[0] for row in got] == [row[0] for row in want]
    else:
        assert got == want


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch
