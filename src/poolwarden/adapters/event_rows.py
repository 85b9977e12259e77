"""The log ingest's write path: events as plain row tuples, stored in bulk on SQLite.

``ingestd`` stores ~10^5 events a minute when it catches up; building an ``Event`` per
delivery and folding events one by one in Python cost more than the SQL does. Here an
event is an ``EventRow`` (the ``events`` columns in ``ROW_COLUMNS`` order, kind as its text
value). ``sqlite_add_rows`` inserts a batch with many rows per statement and adds the new
rows to the day counters: normally as deltas folded outside SQLite (``fold_rows``, the
buckets ``Ledger.add`` fills) and upserted many rows per statement in key order; when some
rows of the batch were stored already, with eight GROUP BY upserts over the new ids
(``_SCOPED_FOLDS``) instead. Each statement is one step that SQLite runs without the GIL.
The fold, the batch's checks (``unique_rows``) and the statements' parameters have C
versions (``_fold_fast``, when built) with the same results; the log ingest runs all of
this in its store worker process. ``SqlStore.add_event_rows_at`` and
``SqlStore.add_events_at`` use them; no I/O of its own beyond that cursor.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import add, itemgetter
from typing import Any

from poolwarden.adapters.memory import MAX_REASON_LENGTH, unique_by_key
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.reputation import ALL_PROVIDERS, COUNT_FIELDS, Ledger, Scope

# key, time, day, kind, tenant, provider, ip, sending_domain, recipient_domain, reason
EventRow = tuple[str, float, int, str, str, str, str | None, str | None, str | None, str]
ROW_COLUMNS = ("key", "time", "day", "kind", "tenant", "provider", "ip", "sending_domain",
               "recipient_domain", "reason")
# 3,000 rows x 10 columns stay below SQLite's 32,766 bound variables per statement (both an
# events row and a counters row have 10 columns)
ROWS_PER_STATEMENT = 3_000
# A batch's last rows go in statements of these sizes: a handful of statement texts that
# the driver keeps prepared, instead of compiling a new one (~8 ms at 3,000 rows) for the
# odd remainder of every batch.
_TAIL_SIZES = (1_000, 300, 100, 30, 10, 3, 1)
COUNTER_COLUMNS = ("scope", "scope_id", "provider", "day", *COUNT_FIELDS)
# (scope, scope id, provider or "*", day, *counts in COUNT_FIELDS order): one counters row
CounterDelta = tuple[Any, ...]
_KINDS = {kind.value: kind for kind in EventKind}
_TEXT_COLUMNS = (0, 3, 4, 5, 6, 7, 8, 9)


def _kind_positions() -> dict[str, int]:
    """Which of ``COUNT_FIELDS`` each event kind counts in, as ``Ledger.add`` does it."""
    out: dict[str, int] = {}
    for kind in EventKind:
        probe = Ledger()
        probe.add(Event(key="", time=0.0, kind=kind, tenant="t", provider="p"))
        out[kind.value] = next(iter(probe.buckets()))[4].as_tuple().index(1)
    return out


_POSITION = _kind_positions()


_COLUMN = [itemgetter(i) for i in range(len(ROW_COLUMNS))]
_BY_KIND = itemgetter(3)
_TENANT, _IP, _IP_TENANT, _DOMAIN = (scope.value for scope in
                                     (Scope.TENANT, Scope.IP, Scope.IP_TENANT, Scope.DOMAIN))


def _bucket_keys(tenants: list[str], providers: list[str], days: list[int],
                 ips: list[str | None], domains: list[str | None]) -> Iterable[tuple[Any, ...]]:
    """The (scope, scope id, provider, day) of every bucket the events given by these
    columns count in, once per event and bucket: ``core.reputation.scope_keys`` (the tenant;
    the IP and IP|tenant when there is an IP; the sending domain when there is one), each
    for the event's provider and for ``*``. Built by ``zip`` over columns, without a Python
    step per event."""
    every = repeat(ALL_PROVIDERS)
    parts = [zip(repeat(_TENANT), tenants, providers, days),
             zip(repeat(_TENANT), tenants, every, days)]
    if any(ips):
        i_columns: tuple[list[Any], ...] = (ips, tenants, providers, days)
        i_ips, i_tenants, i_providers, i_days = (list(compress(column, ips))
                                                 for column in i_columns)
        pairs = list(map("|".join, zip(i_ips, i_tenants, strict=True)))
        parts += [zip(repeat(_IP), i_ips, i_providers, i_days),
                  zip(repeat(_IP), i_ips, every, i_days),
                  zip(repeat(_IP_TENANT), pairs, i_providers, i_days),
                  zip(repeat(_IP_TENANT), pairs, every, i_days)]
    if any(domains):
        d_columns: tuple[list[Any], ...] = (domains, providers, days)
        d_domains, d_providers, d_days = (list(compress(column, domains))
                                          for column in d_columns)
        parts += [zip(repeat(_DOMAIN), d_domains, d_providers, d_days),
                  zip(repeat(_DOMAIN), d_domains, every, d_days)]
    return chain.from_iterable(parts)


def python_fold_rows(rows: Sequence[EventRow]) -> list[CounterDelta]:
    """The day-counter deltas of ``rows``, exactly the buckets ``Ledger.add`` fills for
    those events: one ``(scope, scope_id, provider, day, *counts in COUNT_FIELDS order)``
    per bucket, no bucket twice, sorted by (day, scope, scope_id, provider) (the counters
    key: upserts in that order touch each index page once). The day is the row's ``day``.

    Plain Python kept to C-level loops (``Counter`` over zipped columns, ``map``), since a
    Python step per event and bucket cost three times as much: rows are grouped by kind
    (a sort), each kind's bucket keys counted, then the counts merged into one tuple per
    bucket. ``fold_rows`` runs the C version of it (``_fold_fast``) when that is built."""
    if not rows:
        return []
    ordered = sorted(rows, key=_BY_KIND)
    days: list[int] = list(map(_COLUMN[2], ordered))
    kinds: list[str] = list(map(_COLUMN[3], ordered))
    tenants: list[str] = list(map(_COLUMN[4], ordered))
    providers: list[str] = list(map(_COLUMN[5], ordered))
    ips: list[str | None] = list(map(_COLUMN[6], ordered))
    domains: list[str | None] = list(map(_COLUMN[7], ordered))
    per_field: dict[int, dict[tuple[Any, ...], int]] = {}
    start = 0
    for kind, n in sorted(Counter(kinds).items()):  # the order ``ordered`` has them in
        end = start + n
        per_field[_POSITION[kind]] = Counter(_bucket_keys(
            tenants[start:end], providers[start:end], days[start:end], ips[start:end],
            domains[start:end]))
        start = end
    # Most buckets are touched by one kind (deliveries): those become rows straight from
    # that kind's keys and counts; the few that other kinds touch take a lookup per field.
    main = max(per_field, key=lambda field: len(per_field[field]))
    largest = per_field.pop(main)
    zeros = repeat(0)
    width = range(len(COUNT_FIELDS))
    out: list[CounterDelta] = []
    if per_field:
        mixed = list(set().union(*per_field.values()))
        per_field[main] = dict(zip(mixed, map(largest.pop, mixed, zeros), strict=False))
        fields: list[Iterable[int]] = [
            map(per_field[field].get, mixed, zeros) if field in per_field else zeros
            for field in width]
        out = list(map(add, mixed, zip(*fields, strict=False)))
    fields = [largest.values() if field == main else zeros for field in width]
    out += map(add, largest.keys(), zip(*fields, strict=False))
    # key order (day, scope, scope_id, provider) by stable sorts on one column each, last
    # key column first: a third cheaper than comparing whole tuples, whose first columns
    # are nearly always ties
    for column in (2, 1, 0, 3):
        out.sort(key=_COLUMN[column])
    return out


_native_fold: Callable[[Sequence[EventRow], dict[str, int], int, tuple[str, str, str, str],
                        str], list[CounterDelta]] | None
_native_scan: Callable[[Sequence[EventRow], frozenset[str], tuple[int, ...], int, int],
                       int] | None
_native_flat: Callable[[Sequence[tuple[Any, ...]]], list[Any]] | None
try:  # adapters/_fold_fast.c, built by setup.py when a C compiler is there
    from poolwarden.adapters._fold_fast import flat_values as _native_flat
    from poolwarden.adapters._fold_fast import fold_rows as _native_fold
    from poolwarden.adapters._fold_fast import scan_rows as _native_scan
except ImportError:
    _native_fold = _native_scan = _native_flat = None
if os.environ.get("POOLWARDEN_PURE_PYTHON"):
    _native_fold = _native_scan = _native_flat = None
_KIND_VALUES = frozenset(_KINDS)
_SCOPE_VALUES = (_TENANT, _IP, _IP_TENANT, _DOMAIN)


def fold_rows(rows: Sequence[EventRow]) -> list[CounterDelta]:
    """``python_fold_rows``, by the C version when it is built (a third of the time; the
    same deltas in the same order, tests/adapters/test_event_fold.py)."""
    if _native_fold is not None:
        return _native_fold(rows, _POSITION, len(COUNT_FIELDS), _SCOPE_VALUES, ALL_PROVIDERS)
    return python_fold_rows(rows)


def row_of(event: Event) -> EventRow:
    return (event.key, event.time, event.day, event.kind.value, event.tenant, event.provider,
            event.ip, event.sending_domain, event.recipient_domain, event.reason)


def event_of(row: EventRow) -> Event:
    return Event(key=row[0], time=row[1], kind=_KINDS[row[3]], tenant=row[4], provider=row[5],
                 ip=row[6], sending_domain=row[7], recipient_domain=row[8], reason=row[9])


def unique_rows(rows: Iterable[EventRow]) -> list[EventRow]:
    """The rows without repeated keys (first kept, order kept), refused with the same
    ``StoreError`` as ``unique_by_key`` gives when a row could not be stored everywhere
    (a NUL character, an over-long reason), or naming an unknown kind."""
    out = list(rows)
    if not out:
        return out
    if _native_scan is not None and _native_scan(out, _KIND_VALUES, _TEXT_COLUMNS, 9,
                                                 MAX_REASON_LENGTH) == 0:
        return out  # every value plain, every key once: the ingest's usual batch
    columns = list(zip(*out, strict=True))
    unknown = set(columns[3]) - _KINDS.keys()
    if unknown:
        raise StoreError(f"store: unknown event kind {sorted(unknown)[0][:40]!r}")
    text = "".join(filter(None, chain.from_iterable(columns[i] for i in _TEXT_COLUMNS)))
    if "\x00" in text or max(map(len, columns[9])) > MAX_REASON_LENGTH:
        unique_by_key([event_of(row) for row in out])  # raises, naming the event and field
    if len(set(columns[0])) != len(out):
        seen: set[str] = set()
        first: list[EventRow] = []
        for row in out:
            if row[0] not in seen:
                seen.add(row[0])
                first.append(row)
        out = first
    return out


def _flat(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """One statement's parameters: the rows' values in a row."""
    if _native_flat is not None:
        return _native_flat(rows)
    return list(chain.from_iterable(rows))


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` in consecutive slices of ``ROWS_PER_STATEMENT`` rows or a ``_TAIL_SIZES``."""
    start, left = 0, len(rows)
    for size in (ROWS_PER_STATEMENT, *_TAIL_SIZES):
        while left >= size:
            yield rows[start:start + size]
            start, left = start + size, left - size


@lru_cache(maxsize=16)
def _insert_events(rows: int) -> str:
    one = f"({', '.join('?' * len(ROW_COLUMNS))})"
    return (f"INSERT INTO events ({', '.join(ROW_COLUMNS)}) VALUES "
            + ", ".join([one] * rows) + " ON CONFLICT (key) DO NOTHING")


def _scoped_folds() -> list[str]:
    """One statement per scope and provider column that folds the events with ``id > ?``
    into the day counters: the buckets ``Ledger.add`` fills (``core.reputation.scope_keys``:
    the tenant; the IP and IP|tenant when there is an IP; the sending domain when there is
    one; each for the provider and for ``*``), grouped in SQLite (C, no GIL) before the
    upsert. Only for a batch of which some rows were stored already: the ids tell the new
    rows apart without a Python pass over them. Eight plain GROUP BYs cost a third less
    than one statement over a UNION of all scopes."""
    kind_at = {position: kind for kind, position in _POSITION.items()}
    sums = ", ".join(f"sum(kind = '{kind_at[i]}')" if i in kind_at else "0"
                     for i in range(len(COUNT_FIELDS)))
    upsert = (" ON CONFLICT (scope, scope_id, provider, day) DO UPDATE SET "
              + ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNT_FIELDS))
    out = []
    for scope, scope_id, where in (
            (Scope.TENANT, "tenant", ""),
            (Scope.IP, "ip", " AND ip <> ''"),
            (Scope.IP_TENANT, "ip || '|' || tenant", " AND ip <> ''"),
            (Scope.DOMAIN, "sending_domain", " AND sending_domain <> ''")):
        for provider, group in (("provider", "provider, "), (f"'{ALL_PROVIDERS}'", "")):
            out.append(
                f"INSERT INTO counters (scope, scope_id, provider, day, "
                f"{', '.join(COUNT_FIELDS)}) SELECT '{scope.value}', {scope_id}, {provider}, "
                f"day, {sums} FROM events WHERE id > ?{where} "
                f"GROUP BY {scope_id}, {group}day" + upsert)
    return out


_SCOPED_FOLDS = _scoped_folds()


@lru_cache(maxsize=16)
def _upsert_counters(rows: int) -> str:
    one = f"({', '.join('?' * len(COUNTER_COLUMNS))})"
    return (f"INSERT INTO counters ({', '.join(COUNTER_COLUMNS)}) VALUES "
            + ", ".join([one] * rows)
            + " ON CONFLICT (scope, scope_id, provider, day) DO UPDATE SET "
            + ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNT_FIELDS))


def sqlite_upsert_deltas(cursor: Any, deltas: Sequence[CounterDelta]) -> None:
    """Add ``deltas`` (as ``fold_rows`` gives them: no bucket twice, in key order, which
    only speeds it up) to the counters, many rows per statement."""
    for chunk in _chunks(deltas):
        cursor.execute(_upsert_counters(len(chunk)), _flat(chunk))


def sqlite_add_rows(dbapi_connection: Any, unique: list[EventRow]) -> list[EventRow]:
    """Insert ``unique`` (no repeated key) and count the ones that are new; returns them.

    Inside the caller's ``BEGIN IMMEDIATE`` transaction: nobody else writes, so when the
    inserts stored as many rows as given every row is new (folded by ``fold_rows``), and
    otherwise the rows with an id above the largest before the insert are exactly the new
    ones (folded in SQL by ``_SCOPED_FOLDS``)."""
    if not unique:
        return []
    cursor = dbapi_connection.cursor()
    try:
        before = cursor.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        ordered = sorted(unique)  # key order: far fewer index pages touched
        inserted = 0
        for chunk in _chunks(ordered):
            cursor.execute(_insert_events(len(chunk)), _flat(chunk))
            inserted += cursor.rowcount
        if inserted == len(unique):  # the usual case: every row is new
            sqlite_upsert_deltas(cursor, fold_rows(unique))
            return unique
        cursor.execute("SELECT key FROM events WHERE id > ?", (before,))
        new_keys = {key for (key,) in cursor.fetchall()}
        added = [row for row in unique if row[0] in new_keys]
        if added:
            for statement in _SCOPED_FOLDS:
                cursor.execute(statement, (before,))
    finally:
        cursor.close()
    return added
