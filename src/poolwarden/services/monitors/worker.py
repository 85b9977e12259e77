"""The monitors' DNS work, run in a child process so it never competes with routing.

Parsing and building thousands of DNS messages costs about 0.3 ms of CPU each in
dnspython; in the process that answers Postfix that would sit between policy requests
(and, on a thread, hold the GIL). ``DnsWorker`` keeps one child process (spawned, so it
inherits no sockets or threads), niced (``CHILD_NICE``), and runs each round there:
``blocklists`` and ``mx`` take picklable inputs and return picklable results.
``in_process=True`` runs the same functions on the caller's loop (tests, one-off commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from poolwarden.adapters.resolver import DnsResolver
from poolwarden.core.blocklists import Blocklist
from poolwarden.core.model import Provider
from poolwarden.core.providers import ProviderIndex
from poolwarden.services.monitors.checks import (
    MxAnswer,
    RoundResult,
    Target,
    blocklist_round,
    resolve_mx,
)

CHILD_NICE = 19


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    nameservers: tuple[tuple[str, int], ...]
    timeout: float
    lifetime: float
    concurrency: int

    def build(self) -> DnsResolver:
        return DnsResolver(self.nameservers, timeout=self.timeout, lifetime=self.lifetime,
                           concurrency=self.concurrency)


def _blocklists(spec: ResolverSpec, targets: Sequence[Target], lists: Sequence[Blocklist],
                budget: int, offset: int, keep: frozenset[tuple[str, str]]) -> RoundResult:
    return asyncio.run(blocklist_round(spec.build(), targets, lists, budget=budget,
                                       offset=offset, keep=keep))


def _mx(spec: ResolverSpec, providers: Sequence[Provider], domains: Sequence[str]
        ) -> list[MxAnswer]:
    return asyncio.run(resolve_mx(spec.build(), ProviderIndex(providers), domains))


def _background() -> None:
    """The child runs at a lower CPU priority: on a busy host routing answers come first,
    and a round only takes longer."""
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)


class DnsWorker:
    def __init__(self, *, in_process: bool = False) -> None:
        self.in_process = in_process
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_background)
        return self._pool

    async def blocklists(self, spec: ResolverSpec, targets: Sequence[Target],
                         lists: Sequence[Blocklist], *, budget: int, offset: int,
                         keep: frozenset[tuple[str, str]] = frozenset()) -> RoundResult:
        """A round; clear findings come back only for the ``keep`` pairs."""
        if self.in_process:
            return await blocklist_round(spec.build(), targets, lists, budget=budget,
                                         offset=offset, keep=keep)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor(), _blocklists, spec, tuple(targets), tuple(lists), budget, offset,
            keep)

    async def mx(self, spec: ResolverSpec, providers: Sequence[Provider],
                 domains: Sequence[str]) -> list[MxAnswer]:
        if self.in_process:
            return await resolve_mx(spec.build(), ProviderIndex(providers), domains)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor(), _mx, spec, tuple(providers), tuple(domains))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
