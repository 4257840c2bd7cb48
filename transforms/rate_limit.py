"""A process-wide rate limit on rows written, for operators protecting a live cluster.

A token bucket: ``acquire(n)`` blocks until n rows may go. Every writer of the process shares
one bucket per rate, so MAX_WORKERS threads together stay under the limit; the bucket holds at
most one second of rows, so a pause is not followed by a burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from transforms.process_cache import PerProcess


class RateLimiter:
    def __init__(self, rows_per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rows_per_second <= 0:
            raise ValueError("rows_per_second must be positive")
        self.rate = float(rows_per_second)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()

    def acquire(self, rows: int) -> float:
        """Wait until ``rows`` may be written; return the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= rows
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


_LIMITERS: PerProcess[RateLimiter] = PerProcess(RateLimiter)


def shared_limiter(rows_per_second: float) -> RateLimiter:
    """The process's limiter for this rate (one bucket shared by every writer)."""
    return _LIMITERS.get(rows_per_second, rows_per_second)
