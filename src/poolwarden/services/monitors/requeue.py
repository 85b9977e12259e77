"""The queued-mail mover: mail Postfix already queued on an IP that is drained, listed or
paused leaves by the route the policy gives it now, or waits; it never retries from there.

A job of ``poolwarden serve`` when ``policyd.postfix_config_dir`` is set and
``monitors.move_queued`` is on. Every ``MOVE_EVERY`` seconds it reads the IPs nothing may
leave from out of the snapshot in force (unusable: draining, retired, listed and drained;
or paused by a reaction rule) and runs ``adapters.postfix_reroute.QueueMover.sync`` with
them on its own thread (Postfix's tools block). ``sync`` is idempotent, so a run cut short
(poolwarden killed) is finished by the next one. Decides no route: the agent does, when the
moved mail passes the policy check again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from poolwarden.adapters.postfix_reroute import QueueMover
from poolwarden.config.load import LoadedConfig
from poolwarden.core.errors import PoolwardenError
from poolwarden.core.shaping import RestrictionKind
from poolwarden.core.snapshot import Snapshot

log = logging.getLogger("poolwarden.requeue")

MOVE_EVERY = 2.0


def ips_to_leave(snapshot: Snapshot, now: float) -> set[str]:
    """IPs whose queued mail must move: not usable, or paused by a reaction rule."""
    off = {a for a, ip in snapshot.ips.items() if not ip.usable}
    off |= {r.ip for r in snapshot.restrictions.all
            if r.ip is not None and r.kind is RestrictionKind.PAUSE and r.active(now)}
    return off


class QueuedMailMover:
    def __init__(self, config: Callable[[], LoadedConfig],
                 snapshot: Callable[[], Snapshot | None], clock: Callable[[], float]) -> None:
        self.config = config
        self.snapshot = snapshot
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="requeue")
        self._last: set[str] | None = None  # None: never synced (clean up after a crash)
        self.moved = 0
        self._mover: QueueMover | None = None

    def enabled(self) -> bool:
        config = self.config()
        return (config.settings.monitors.move_queued
                and config.settings.policyd.postfix_config_dir is not None)

    async def run_once(self) -> None:
        snapshot = self.snapshot()
        if snapshot is None or not self.enabled():
            return
        ips = ips_to_leave(snapshot, self.clock())
        if not ips and self._last == set():
            return  # nothing to move now or before: no Postfix tool at all
        directory = self.config().settings.policyd.postfix_config_dir
        if self._mover is None or self._mover.config_dir != directory:
            self._mover = QueueMover(directory)  # kept: it remembers messages already read
        mover = self._mover
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, mover.sync, ips)
        except PoolwardenError as exc:
            log.error("queued mail not moved off %s: %s", ", ".join(sorted(ips)) or "-", exc)
            return
        self._last = ips if not result.waiting else None
        if result.moved:
            self.moved += len(result.moved)
            log.warning("moved %d queued message(s) off %s: they pass the policy check "
                        "again", len(result.moved), ", ".join(sorted(ips)))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MOVE_EVERY)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
