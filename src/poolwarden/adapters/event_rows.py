"""The log ingest's write path on SQLite: event rows and their counter deltas, stored in bulk.

``ingestd`` stores ~10^5 events a minute when it catches up. An event is an ``EventRow``
(``core.counters``: the ``events`` columns as a tuple). ``sqlite_add_rows`` inserts a batch
with many rows per statement (ON CONFLICT DO NOTHING on the key), learns which rows were
new, and upserts the counter deltas ``core.counters.counter_deltas`` makes of exactly
those, many rows per statement in key order: this module stores deltas, it never decides
which counters an event feeds. ``unique_rows`` checks a batch the way every backend
refuses rows. Each statement is one step that SQLite runs without the GIL; the log ingest
runs all of this in its store worker process. ``SqlStore.add_event_rows_at`` and
``SqlStore.add_events_at`` use it; no I/O of its own beyond the cursor it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

from poolwarden.adapters.storable import MAX_REASON_LENGTH, unique_by_key
from poolwarden.core.counters import (
    COUNT_FIELDS,
    COUNTER_COLUMNS,
    KINDS,
    ROW_COLUMNS,
    CounterDelta,
    EventRow,
    counter_deltas,
    event_of,
    row_of,
)
from poolwarden.core.errors import StoreError

# the row type and its conversions are the core's; named here for the ingest's imports
__all__ = ["EventRow", "event_of", "row_of", "sqlite_add_rows", "sqlite_upsert_deltas",
           "unique_rows"]

# 3,000 rows x 10 columns stay below SQLite's 32,766 bound variables per statement (both an
# events row and a counters row have 10 columns)
ROWS_PER_STATEMENT = 3_000
# A batch's last rows go in statements of these sizes: a handful of statement texts that
# the driver keeps prepared, instead of compiling a new one (~8 ms at 3,000 rows) for the
# odd remainder of every batch.
_TAIL_SIZES = (1_000, 300, 100, 30, 10, 3, 1)
_TEXT_COLUMNS = (0, 3, 4, 5, 6, 7, 8, 9)


def unique_rows(rows: Iterable[EventRow]) -> list[EventRow]:
    """The rows without repeated keys (first kept, order kept), refused with the same
    ``StoreError`` as ``unique_by_key`` gives when a row could not be stored everywhere
    (a NUL character, an over-long reason), or naming an unknown kind."""
    out = list(rows)
    if not out:
        return out
    columns = list(zip(*out, strict=True))
    unknown = set(columns[3]) - KINDS.keys()
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


@lru_cache(maxsize=16)
def _upsert_counters(rows: int) -> str:
    one = f"({', '.join('?' * len(COUNTER_COLUMNS))})"
    return (f"INSERT INTO counters ({', '.join(COUNTER_COLUMNS)}) VALUES "
            + ", ".join([one] * rows)
            + " ON CONFLICT (scope, scope_id, provider, day) DO UPDATE SET "
            + ", ".join(f"{name} = {name} + excluded.{name}" for name in COUNT_FIELDS))


def sqlite_upsert_deltas(cursor: Any, deltas: Sequence[CounterDelta]) -> None:
    """Add ``deltas`` (as ``counter_deltas`` gives them: no bucket twice, in key order, which
    only speeds it up) to the counters, many rows per statement."""
    for chunk in _chunks(deltas):
        cursor.execute(_upsert_counters(len(chunk)), _flat(chunk))


def sqlite_add_rows(dbapi_connection: Any, unique: list[EventRow]
                    ) -> tuple[list[EventRow], list[CounterDelta]]:
    """Insert ``unique`` (no repeated key) and count the ones that are new: (the new rows,
    the counter deltas stored for them).

    Inside the caller's ``BEGIN IMMEDIATE`` transaction: nobody else writes, so when the
    inserts stored as many rows as given every row is new, and otherwise the rows with an
    id above the largest before the insert are exactly the new ones. Only those feed
    deltas: a key stored before is never counted again (exactly once)."""
    if not unique:
        return [], []
    cursor = dbapi_connection.cursor()
    try:
        before = cursor.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        ordered = sorted(unique)  # key order: far fewer index pages touched
        inserted = 0
        for chunk in _chunks(ordered):
            cursor.execute(_insert_events(len(chunk)), _flat(chunk))
            inserted += cursor.rowcount
        if inserted == len(unique):  # the usual case: every row is new
            added = unique
        else:
            cursor.execute("SELECT key FROM events WHERE id > ?", (before,))
            new_keys = {key for (key,) in cursor.fetchall()}
            added = [row for row in unique if row[0] in new_keys]
        deltas = counter_deltas(added)
        sqlite_upsert_deltas(cursor, deltas)
    finally:
        cursor.close()
    return added, deltas
