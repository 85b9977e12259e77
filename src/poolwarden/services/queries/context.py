"""What every surface reads of one node: the ``NodeContext`` (the API, the dashboard,
/metrics and the CLI's read commands).

The HTTP app keeps one as ``app.state.ctx``; the CLI builds one per command. It holds
the loaded configuration, the store, the clock, the node name and, inside ``poolwarden
serve``, the running ``Runtime`` (for its live snapshot and counters). Standalone (tests, a
read-only API node, the CLI) the snapshot is built from the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from poolwarden.config.load import LoadedConfig
from poolwarden.core.snapshot import Snapshot
from poolwarden.ports import AccessStore, AlertStore, Store
from poolwarden.services.reputation.engine import Engine

if TYPE_CHECKING:
    from poolwarden.services.runtime import Runtime


class NodeStore(Store, AccessStore, AlertStore, Protocol):
    """The store the surfaces read: the system of record plus tokens, users, audit, alerts."""


@dataclass
class NodeContext:
    """The app's view of one node. ``config`` follows the runtime's reloads."""

    loaded_config: LoadedConfig
    store: NodeStore
    clock: Callable[[], float] = time.time
    node: str = "local"
    runtime: Runtime | None = None
    # how long a built Engine (the day counters in memory) is reused; 0 rebuilds per call
    engine_ttl: float = 2.0
    # a Postfix configuration directory for ``postqueue -j`` (held mail); None: the log only
    postfix_config_dir: str | None = None
    # the app may listen on a non-loopback address only when this is set
    allow_remote: bool = False
    extras: dict[str, Any] = field(default_factory=dict)  # for the dashboard and metrics
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _engine: tuple[float, int, Engine] | None = field(default=None, repr=False)

    @property
    def config(self) -> LoadedConfig:
        return self.runtime.config if self.runtime is not None else self.loaded_config

    def now(self) -> float:
        return self.clock()

    def engine(self) -> Engine:
        """An Engine over the store, reused for ``engine_ttl`` seconds while the
        store's change marker stays put (tier moves and overrides show at once)."""
        now = self.clock()
        marker = self.store.change_marker()
        with self._lock:
            cached = self._engine
            if (cached is not None and cached[1] == marker and now - cached[0] < self.engine_ttl
                    and cached[2].config is self.config):
                return cached[2]
        engine = Engine(self.config, self.store, now=now)
        with self._lock:
            self._engine = (now, marker, engine)
        return engine

    def snapshot(self) -> Snapshot:
        """The running agent's snapshot, or one built from the store (standalone, or
        before the agent's first build)."""
        if self.runtime is not None and self.runtime.snapshot is not None:
            return self.runtime.snapshot
        return self.engine().snapshot(self.clock())
