"""The counter rule: which day counters an outcome event feeds, as deltas. The one place.

An event counts once in one field (``COUNT_FIELDS``, by its kind) of a day bucket
``(scope, scope id, provider, day)`` for every scope it belongs to: its tenant; its
egress IP and ``"<ip>|<tenant>"`` (who sent what from a shared IP) when it has an IP;
its sending domain when it has one; each for the event's provider and for ``*`` (all
providers). ``counter_deltas`` turns a batch of events into those counts, one
``CounterDelta`` per bucket. The ``Ledger`` (``core.reputation``) applies deltas to its
buckets, and every store adds the same deltas to its stored counters; nothing else
decides which counters an event feeds.

Events travel here as ``EventRow``s: the ``events`` columns as a plain tuple, kind as its
text value. The log ingest stores ~10^5 of them a minute when it catches up and building
an ``Event`` per row costs more than the store does; ``row_of`` / ``event_of`` convert.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum
from itertools import chain, compress, repeat
from operator import add, itemgetter
from typing import Any

from poolwarden.core.events import Event, EventKind

ALL_PROVIDERS = "*"


class Scope(StrEnum):
    TENANT = "tenant"
    IP = "ip"
    DOMAIN = "domain"
    IP_TENANT = "ip_tenant"  # scope_id "<ip>|<tenant>": who sent what from a shared IP


COUNT_FIELDS = ("delivered", "deferred", "hard_bounces", "soft_bounces", "complaints",
                "trap_hits")

# The field each kind counts in, as its position in COUNT_FIELDS.
FIELD_OF_KIND: dict[str, int] = {
    EventKind.DELIVERED.value: 0,
    EventKind.DEFERRED.value: 1,
    EventKind.HARD_BOUNCE.value: 2,
    EventKind.SOFT_BOUNCE.value: 3,
    EventKind.COMPLAINT.value: 4,
    EventKind.TRAP_HIT.value: 5,
}

# key, time, day, kind, tenant, provider, ip, sending_domain, recipient_domain, reason
EventRow = tuple[str, float, int, str, str, str, str | None, str | None, str | None, str]
ROW_COLUMNS = ("key", "time", "day", "kind", "tenant", "provider", "ip", "sending_domain",
               "recipient_domain", "reason")
# (scope, scope id, provider or "*", day, *counts in COUNT_FIELDS order): one bucket's delta
CounterDelta = tuple[Any, ...]
COUNTER_COLUMNS = ("scope", "scope_id", "provider", "day", *COUNT_FIELDS)

KINDS = {kind.value: kind for kind in EventKind}
_COLUMN = [itemgetter(i) for i in range(len(ROW_COLUMNS))]
_BY_KIND = itemgetter(3)
_TENANT, _IP, _IP_TENANT, _DOMAIN = (scope.value for scope in
                                     (Scope.TENANT, Scope.IP, Scope.IP_TENANT, Scope.DOMAIN))


def row_of(event: Event) -> EventRow:
    return (event.key, event.time, event.day, event.kind.value, event.tenant, event.provider,
            event.ip, event.sending_domain, event.recipient_domain, event.reason)


def event_of(row: EventRow) -> Event:
    return Event(key=row[0], time=row[1], kind=KINDS[row[3]], tenant=row[4], provider=row[5],
                 ip=row[6], sending_domain=row[7], recipient_domain=row[8], reason=row[9])


def _bucket_keys(tenants: list[str], providers: list[str], days: list[int],
                 ips: list[str | None], domains: list[str | None]) -> Iterable[tuple[Any, ...]]:
    """The (scope, scope id, provider, day) of every bucket the events given by these
    columns count in, once per event and bucket (the module docstring's rule; an empty IP
    or domain counts as none). Built by ``zip`` over columns, without a Python step per
    event: a step per event and bucket cost three times as much."""
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


def counter_deltas(rows: Sequence[EventRow]) -> list[CounterDelta]:
    """The day-counter deltas of ``rows``: one ``(scope, scope_id, provider, day, *counts
    in COUNT_FIELDS order)`` per bucket the events feed, no bucket twice, sorted by
    (day, scope, scope_id, provider) (the stored counters' key: upserts in that order touch
    each index page once, and every writer takes row locks in the same order). The day is
    the row's ``day``. ``KeyError`` for a kind that is not an ``EventKind`` value.

    Kept to C-level loops (``Counter`` over zipped columns, ``map``): rows are grouped by
    kind (a sort), each kind's bucket keys counted, then the counts merged into one tuple
    per bucket."""
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
        per_field[FIELD_OF_KIND[kind]] = Counter(_bucket_keys(
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


def event_deltas(events: Iterable[Event]) -> list[CounterDelta]:
    """``counter_deltas`` of ``Event``s."""
    return counter_deltas([row_of(event) for event in events])
