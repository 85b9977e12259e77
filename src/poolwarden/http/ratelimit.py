"""Failed-credential rate limiting (docs/testing.md S6, ASVS 2.4.1), without lockouts.

Counts failed attempts per key (the API uses the client address; a login form
would use client address and user name) in a sliding window. Once a key is
over the limit, further *failed* attempts answer 429 with ``Retry-After``
instead of 401, and cost no audit or log work, so a flood costs no
lookup beyond the token check. A valid credential is still accepted: an attacker on
the same address cannot lock operators out (no account-lockout denial of
service), and guessing a 256-bit token is hopeless however fast one can try.
The client address is the socket peer's: ``X-Forwarded-For`` and the like
are never read (no proxy is trusted), so they cannot shift the blame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW = 60.0  # seconds
LIMIT = 30  # failed attempts per key per window before 429
MAX_KEYS = 10_000  # memory bound: the oldest keys are forgotten first


class FailureLimiter:
    def __init__(self, *, limit: int = LIMIT, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self.refused = 0  # attempts answered 429 (for metrics and tests)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def blocked(self, key: str) -> float | None:
        """Seconds until ``key`` may fail again, or None when it is under the limit."""
        now = self.clock()
        with self._lock:
            times = self._recent(key, now)
            if len(times) < self.limit:
                return None
            self.refused += 1
            return max(1.0, self.window - (now - times[0]))

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            times = self._recent(key, now)
            if key not in self._failures:
                if len(self._failures) >= MAX_KEYS:
                    self._failures.pop(next(iter(self._failures)))
                self._failures[key] = times
            times.append(now)
