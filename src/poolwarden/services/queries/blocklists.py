"""The blocklist read model every surface shows: current listings and their history.

``overview`` (the API's ``/blocklists``, the dashboard's overview), ``for_ip`` and
``for_tenant`` (the IP and tenant pages: the tenant's domains and the IPs it sends from),
``listed_on`` (the ``listed`` column of ``poolwarden ips``). Reads the listing store; never
writes and never resolves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from poolwarden.core.blocklists import Listing
from poolwarden.ports import ListingChange, Store

HISTORY = 100


def listing_dict(s: Listing) -> dict[str, Any]:
    return {"target": s.target, "list": s.list, "kind": s.kind.value, "listed": s.listed,
            "since": s.since, "codes": list(s.codes), "meaning": s.meaning,
            "reason": s.reason, "checked_at": s.checked_at,
            "clear_since": s.clear_since}


def change_dict(c: ListingChange) -> dict[str, Any]:
    return {"at": c.at, "target": c.target, "list": c.list, "kind": c.kind,
            "change": c.change, "codes": list(c.codes), "meaning": c.meaning,
            "reason": c.reason, "consequence": c.consequence}


def overview(store: Store, *, limit: int = HISTORY) -> dict[str, Any]:
    listings = store
    current = sorted((s for s in listings.listings() if s.listed),
                     key=lambda s: (s.kind.value, s.target, s.list))
    return {"listed": [listing_dict(s) for s in current],
            "history": [change_dict(c) for c in listings.listing_history(limit=limit)]}


def _for(store: Store, targets: Iterable[str], limit: int) -> dict[str, Any]:
    wanted = set(targets)
    listings = store
    current = [listing_dict(s) for s in listings.listings() if s.listed and s.target in wanted]
    history = [change_dict(c) for c in listings.listing_history(limit=limit * 10)
               if c.target in wanted][:limit]
    return {"listed": current, "history": history}


def for_ip(store: Store, address: str, *, limit: int = HISTORY) -> dict[str, Any]:
    return _for(store, [address], limit)


def for_tenant(store: Store, domains: Iterable[str], ips: Iterable[str], *,
               limit: int = HISTORY) -> dict[str, Any]:
    """Listings of the tenant's sending domains and of the IPs its mail leaves from."""
    return _for(store, [*domains, *ips], limit)


def listed_on(store: Store) -> dict[str, str]:
    """Target → "list, list" for every target listed now (any kind)."""
    out: dict[str, list[str]] = {}
    for s in store.listings():
        if s.listed:
            out.setdefault(s.target, []).append(s.list)
    return {t: ", ".join(sorted(names)) for t, names in out.items()}
