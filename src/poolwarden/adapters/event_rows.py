"""The log ingest's write path: events as plain row tuples, folded into day counters in bulk.

``ingestd`` stores ~10^5 events a minute when it catches up; building an ``Event`` per
delivery and folding events one by one costs more than the SQL does. Here an event is an
``EventRow`` (the ``events`` columns in ``EVENT_COLUMNS`` order, kind as its text value),
and ``fold_rows`` folds a batch into counter increments per kind with C-level iteration only
(``Counter`` over ``zip``): the buckets ``Ledger.add`` fills
(``core.reputation.scope_keys``: the tenant; the IP and IP|tenant when there is an IP; the
sending domain when there is one; each for the provider and for ``*``).
``sqlite_add_rows`` inserts the new rows and upserts the folded counters with many rows
per statement (one SQLite step each, run without the GIL, so a parser thread keeps
going). ``SqlStore.add_event_rows_at`` uses them; no I/O of its own beyond that cursor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import add
from typing import Any

from poolwarden.adapters.memory import MAX_REASON_LENGTH, unique_by_key
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.core.reputation import ALL_PROVIDERS, COUNT_FIELDS, Ledger, Scope

# key, time, day, kind, tenant, provider, ip, sending_domain, recipient_domain, reason
EventRow = tuple[str, float, int, str, str, str, str | None, str | None, str | None, str]
ROW_COLUMNS = ("key", "time", "day", "kind", "tenant", "provider", "ip", "sending_domain",
               "recipient_domain", "reason")
# 3,000 rows x 10 columns stay below SQLite's 32,766 bound variables per statement
ROWS_PER_STATEMENT = 3_000
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


def fold_rows(rows: Sequence[EventRow]) -> dict[str, Counter[tuple[str, str, str, int]]]:
    """The day-counter increments of ``rows``, per event kind: bucket (scope, scope id,
    provider, day) -> how many events of that kind it gets."""
    out: dict[str, Counter[tuple[str, str, str, int]]] = {}
    if not rows:
        return out
    kinds = [row[3] for row in rows]
    present = set(kinds)
    for kind in present:
        of_kind = rows if len(present) == 1 else list(compress(rows, map(kind.__eq__, kinds)))
        counts: Counter[tuple[str, str, str, int]] = Counter()
        _fold_kind(of_kind, counts.update)
        out[kind] = counts
    return out


def _fold_kind(rows: Sequence[EventRow], update: Any) -> None:
    star = repeat(ALL_PROVIDERS)
    _, _, days, _, tenants, providers, ips, domains, _, _ = zip(*rows, strict=True)
    scope = Scope.TENANT.value
    update(zip(repeat(scope), tenants, providers, days))
    update(zip(repeat(scope), tenants, star, days))
    if any(ips):
        with_ip = list(compress(rows, ips))
        _, _, days, _, tenants, providers, ips, _, _, _ = zip(*with_ip, strict=True)
        for scope, ids in ((Scope.IP.value, ips),
                           (Scope.IP_TENANT.value, list(map("{}|{}".format, ips, tenants)))):
            update(zip(repeat(scope), ids, providers, days))
            update(zip(repeat(scope), ids, star, days))
    if any(domains):
        with_domain = list(compress(rows, domains))
        _, _, days, _, _, providers, _, domains, _, _ = zip(*with_domain, strict=True)
        scope = Scope.DOMAIN.value
        update(zip(repeat(scope), domains, providers, days))
        update(zip(repeat(scope), domains, star, days))


@lru_cache(maxsize=8)
def _insert_events(rows: int) -> str:
    one = f"({', '.join('?' * len(ROW_COLUMNS))})"
    return (f"INSERT INTO events ({', '.join(ROW_COLUMNS)}) VALUES "
            + ", ".join([one] * rows) + " ON CONFLICT (key) DO NOTHING")


@lru_cache(maxsize=64)
def _upsert_counter(field: str, rows: int) -> str:
    """Add to one count field of ``rows`` buckets (the others start at their default 0)."""
    return ("INSERT INTO counters (scope, scope_id, provider, day, " + field + ") VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * rows)
            + f" ON CONFLICT (scope, scope_id, provider, day) DO UPDATE SET {field} = "
            f"{field} + excluded.{field}")


def sqlite_add_rows(dbapi_connection: Any, unique: list[EventRow]) -> list[EventRow]:
    """Insert ``unique`` (no repeated key) and count the ones that are new; returns them.

    Inside the caller's ``BEGIN IMMEDIATE`` transaction: nobody else writes, so the rows
    with an id above the largest before the insert are exactly the new ones."""
    if not unique:
        return []
    cursor = dbapi_connection.cursor()
    try:
        before = cursor.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        ordered = sorted(unique)  # key order: far fewer index pages touched
        inserted = 0
        for start in range(0, len(ordered), ROWS_PER_STATEMENT):
            chunk = ordered[start:start + ROWS_PER_STATEMENT]
            cursor.execute(_insert_events(len(chunk)), list(chain.from_iterable(chunk)))
            inserted += cursor.rowcount
        added = unique
        if inserted != len(unique):
            cursor.execute("SELECT key FROM events WHERE id > ?", (before,))
            new_keys = {key for (key,) in cursor.fetchall()}
            added = [row for row in unique if row[0] in new_keys]
        for kind, counts in fold_rows(added).items():
            field = COUNT_FIELDS[_POSITION[kind]]
            # (scope, id, provider, day) + (n,), flattened: C-level iteration only
            ones = zip(counts.values(), strict=True)
            flat = list(chain.from_iterable(map(add, counts.keys(), ones)))
            step = 5 * ROWS_PER_STATEMENT
            for start in range(0, len(flat), step):
                chunk = flat[start:start + step]
                cursor.execute(_upsert_counter(field, len(chunk) // 5), chunk)
    finally:
        cursor.close()
    return added
