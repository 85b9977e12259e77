"""monitord: the DNS monitors as a job of ``poolwarden serve``.

Two loops. The blocklist loop checks every egress IP and tenant domain against the
configured lists every ``blocklist_interval`` (within ``query_budget``), folds each finding
into the listing's state (``core.blocklists.observe``) and stores the states with the
changes they made (listed, delisted) in one transaction; a change asks the runtime for a
new snapshot, whose routes skip listed IPs when ``on_listing = "drain"``. The MX loop
takes the recipient domains the routing agent saw, resolves the unknown ones and publishes
the learned domain → provider map (the runtime swaps it into the snapshot); the agent
never waits for it. The DNS work runs in a child process (``worker.DnsWorker``); store
work runs on the runtime's store thread. Never decides a route itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from poolwarden.config.load import LoadedConfig
from poolwarden.config.monitors import nameserver_address
from poolwarden.core.blocklists import (
    Change,
    Finding,
    Listing,
    ListKind,
    Status,
    listed_ips,
    observe,
)
from poolwarden.core.errors import PoolwardenError
from poolwarden.core.providers import ProviderIndex
from poolwarden.ports import ListingChange, Store
from poolwarden.services.monitors.mx_cache import MxCache
from poolwarden.services.monitors.targets import domain_targets, ip_targets
from poolwarden.services.monitors.worker import DnsWorker, ResolverSpec
from poolwarden.services.queries.metrics import LatencyHistogram

log = logging.getLogger("poolwarden.monitord")

T = TypeVar("T")
DNS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MX_EVERY = 1.0  # seconds between two MX batches
MX_BATCH = 500  # domains resolved per batch at most
NOTE_CHUNK = 200  # seen domains checked between two turns of the event loop


@dataclass(slots=True)
class MonitorStats:
    rounds: int = 0
    lookups: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # unknown answers per list
    last_round_seconds: float = 0.0
    last_round_at: float = 0.0
    mx_lookups: int = 0
    mx_errors: int = 0
    listed: dict[str, int] = field(default_factory=dict)  # targets listed now, by list
    latency: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(DNS_BUCKETS))


def spec_of(config: LoadedConfig) -> ResolverSpec | None:
    """The resolver the monitors use, or None when none is configured (no monitoring)."""
    s = config.settings.monitors
    servers = tuple(a for a in map(nameserver_address, s.nameservers) if a is not None)
    if not s.enabled or not servers:
        return None
    return ResolverSpec(servers, s.timeout, s.lifetime, s.concurrency)


class StoreRunner(Protocol):
    """Runs store work off the event loop (the runtime's store thread)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class Monitord:
    def __init__(self, config: Callable[[], LoadedConfig], store: Store, *,
                 clock: Callable[[], float] = time.time,
                 run_store: StoreRunner | None = None,
                 on_listing: Callable[[list[ListingChange]], Awaitable[None]] | None = None,
                 on_mx: Callable[[], None] | None = None,
                 in_process: bool = False) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self._run_store = run_store
        self._on_listing = on_listing
        self._on_mx = on_mx
        s = config().settings.monitors
        self.mx = MxCache(size=s.mx_cache_size, queue_size=s.mx_queue_size,
                          min_ttl=s.mx_min_ttl, max_ttl=s.mx_max_ttl)
        self.states: dict[tuple[str, str], Listing] = {}
        self.stats = MonitorStats()
        # two children: a long blocklist round must not hold up the MX of new domains
        self.worker = DnsWorker(in_process=in_process)
        self.mx_worker = DnsWorker(in_process=in_process)
        self._offset = 0
        self._loaded = False

    async def _store(self, fn: Callable[[], T]) -> T:
        if self._run_store is not None:
            return await self._run_store(fn)
        return fn()

    @property
    def enabled(self) -> bool:
        return spec_of(self.config()) is not None

    async def load(self) -> None:
        found = await self._store(lambda: self.store.listings())
        self.states = {(s.target, s.list): s for s in found}
        self._loaded = True

    # -- blocklists -------------------------------------------------------------------

    async def blocklist_round(self) -> list[ListingChange]:
        """One round over every target; returns the listings and delistings it made."""
        config = self.config()
        spec = spec_of(config)
        if spec is None:
            return []
        if not self._loaded:
            await self.load()
        settings = config.settings.monitors
        targets = ip_targets(config) + domain_targets(config)
        result = await self.worker.blocklists(spec, targets, config.blocklists,
                                              budget=settings.query_budget,
                                              offset=self._offset,
                                              keep=frozenset(self.states))
        self._offset = result.next_offset
        stats = self.stats
        stats.rounds += 1
        stats.lookups += result.lookups
        stats.last_round_seconds = result.seconds
        stats.last_round_at = self.clock()
        stats.latency.observe_all(result.latencies)
        for f in result.findings:
            if f.status is Status.UNKNOWN:
                stats.errors[f.list] = stats.errors.get(f.list, 0) + 1
        if result.skipped:
            log.warning("blocklists: %d checks over the query budget (%d), next round "
                        "continues with them", result.skipped, settings.query_budget)
        states, changes = self.fold(result.findings, config, now=self.clock())
        stats.listed = {}
        for s in self.states.values():
            if s.listed:
                stats.listed[s.list] = stats.listed.get(s.list, 0) + 1
        if states:
            await self._store(lambda: self.store.save_listings(states,
                                                                                 changes))
        by_target: dict[tuple[str, str], list[ListingChange]] = {}
        for c in changes:
            by_target.setdefault((c.target, c.change), []).append(c)
        for (target, change), found in by_target.items():  # one line per target
            log.warning("blocklist: %s %s on %s: %s", target, change,
                        "; ".join(f"{c.list} ({c.meaning})" for c in found),
                        found[0].consequence)
        if changes and self._on_listing is not None:
            await self._on_listing(changes)
        return changes

    def fold(self, findings: Iterable[Finding], config: LoadedConfig, *, now: float
             ) -> tuple[list[Listing], list[ListingChange]]:
        """New states and the changes they make (pure, apart from ``self.states``)."""
        settings = config.settings.monitors
        kinds = {b.name: b.kind for b in config.blocklists}
        states: list[Listing] = []
        changed: list[tuple[Listing, Change]] = []
        for f in findings:
            key = (f.target, f.list)
            previous = self.states.get(key)
            state, change = observe(previous, f, kinds.get(f.list, ListKind.IP), now=now,
                                    quiet=settings.delist_quiet_period)
            if state is None:
                continue  # never listed: nothing worth a row
            self.states[key] = state
            states.append(state)
            if change is not None:
                changed.append((state, change))
        if not changed:
            return states, []
        listed_by: dict[str, list[str]] = {}
        for s in self.states.values():
            if s.listed:
                listed_by.setdefault(s.target, []).append(s.list)
        return states, [self._change(s, c, config, now, sorted(listed_by.get(s.target, ())))
                        for s, c in changed]

    def _change(self, state: Listing, change: Change, config: LoadedConfig, now: float,
                listed_on: list[str]) -> ListingChange:
        still = [name for name in listed_on if name != state.list]
        drain = config.settings.monitors.on_listing == "drain"
        if state.kind is ListKind.DOMAIN:
            owners = [t.name for t in config.inventory.tenants if state.target in t.domains]
            consequence = (f"sending domain of {', '.join(owners) or 'no tenant'}: alert only "
                           "(a domain listing does not change routes)")
        elif change is Change.LISTED:
            consequence = ("drained: no new mail leaves from it; mail queued on it is moved "
                           "off" if drain else "alert only (on_listing = \"alert\")")
            if still:
                consequence += f" (also listed on {', '.join(still)})"
        else:
            quiet = config.settings.monitors.delist_quiet_period
            consequence = (f"still drained: listed on {', '.join(still)}" if still and drain
                           else f"restored after {quiet:.0f} s of clear answers"
                           if drain else "delisted (on_listing = \"alert\")")
        return ListingChange(now, state.target, state.list, state.kind.value, change.value,
                             state.codes, state.meaning, state.reason, consequence)

    def listed(self) -> dict[str, str]:
        return listed_ips(self.states.values())

    # -- MX rollup ---------------------------------------------------------------------

    async def mx_round(self, seen: Iterable[str]) -> bool:
        """Queue the domains the agent saw, resolve what is due; True if the learned map
        changed."""
        config = self.config()
        spec = spec_of(config)
        index = ProviderIndex(config.inventory.providers)
        pending = list(seen)
        for start in range(0, len(pending), NOTE_CHUNK):
            self.mx.note(pending[start:start + NOTE_CHUNK], index)
            await asyncio.sleep(0)  # routing requests go first between chunks
        if spec is None:
            return False
        now = self.clock()
        due = self.mx.due(now, MX_BATCH)
        if not due:
            return False
        before = self.mx.version
        answers = await self.mx_worker.mx(spec, config.inventory.providers, due)
        self.stats.mx_lookups += len(answers)
        self.stats.mx_errors += sum(1 for a in answers if not a.ok)
        self.stats.latency.observe_all([a.seconds for a in answers])
        for start in range(0, len(answers), NOTE_CHUNK):
            self.mx.store(answers[start:start + NOTE_CHUNK], self.clock())
            await asyncio.sleep(0)
        changed = self.mx.version != before
        if changed and self._on_mx is not None:
            self._on_mx()
        return changed

    # -- the job -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, seen: Callable[[], set[str]]) -> None:
        """Both loops until ``stop`` is set; errors are logged and the loops go on."""
        await asyncio.gather(self._blocklist_loop(stop), self._mx_loop(stop, seen))

    async def _blocklist_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.blocklist_round()
            except (PoolwardenError, OSError, RuntimeError) as exc:
                log.error("blocklist round failed: %s", exc)
            wait = self.config().settings.monitors.blocklist_interval
            await _sleep(stop, max(0.0, wait - (time.monotonic() - started)))

    async def _mx_loop(self, stop: asyncio.Event, seen: Callable[[], set[str]]) -> None:
        while not stop.is_set():
            try:
                await self.mx_round(seen())
            except (PoolwardenError, OSError, RuntimeError) as exc:
                log.error("MX round failed: %s", exc)
            await _sleep(stop, MX_EVERY)

    def close(self) -> None:
        self.worker.close()
        self.mx_worker.close()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
