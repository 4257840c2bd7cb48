"""MAX_ROWS_PER_SECOND: a limit on the rows a run writes per second, as a whole, for operators
protecting a live cluster.

Each writing process holds one token bucket per run (``RateLimit.limiter``), shared by all its
writers, so its MAX_WORKERS threads together stay under the process's share; the bucket holds
at most one second of rows, so a pause is not followed by a burst.

The share follows the processes that write at the moment. With a run ledger, a process beats
its row in the ledger's ``writers`` table while it writes (at most every HEARTBEAT_SECONDS, sent
without waiting) and reads the others' rows back: its share is the run's limit divided by the
writers that beat within the last WINDOW_SECONDS, itself included. A process that runs out of
work stops beating, so the others take its share within WINDOW_SECONDS; a run therefore holds
its limit to the end, whichever process ends first. Until its first look at the ledger, and for
good without a ledger, a process takes the static share: the limit divided by the writing
processes the launcher expects (``RateLimit.processes``), so a start never bursts. A ledger that
cannot be reached leaves the last share in force.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from transforms.ledger import LedgerOptions, LiveWriters
from transforms.process_cache import PerProcess

__all__ = ["RateLimit", "RateLimiter", "RunLimiter"]

_LOG = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket: ``acquire(n)`` blocks until n rows may go. ``rate`` may change while it
    is in use (a process's share of a run's limit)."""

    def __init__(self, rows_per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rows_per_second <= 0:
            raise ValueError("rows_per_second must be positive")
        self._rate = float(rows_per_second)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, rows_per_second: float) -> None:
        if rows_per_second <= 0:
            raise ValueError("rows_per_second must be positive")
        with self._lock:
            self._refill()  # the time so far earned tokens at the old rate
            self._rate = float(rows_per_second)
            self._tokens = min(self._tokens, self._rate)

    def acquire(self, rows: int) -> float:
        """Wait until ``rows`` may be written; return the seconds waited."""
        with self._lock:
            self._refill()
            self._tokens -= rows
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now


class Writers(Protocol):
    """Where the writers of a run find each other (``transforms.ledger.LiveWriters``)."""

    def beat(self, writer: str, then: Callable[[Mapping[str, float] | Exception], None]) -> None:
        """Record that ``writer`` writes now, and call ``then`` (now or later, on any thread)
        with the seconds since each writer of the run last beat, or with the error."""


class RunLimiter:
    """One process's limiter for a run: a token bucket whose rate is the process's share of
    the run's limit, from the live writers ``writers`` knows of (module docstring)."""

    HEARTBEAT_SECONDS = 0.5
    WINDOW_SECONDS = 2.0
    # A beat whose answer never came (a session shut down under it) blocks the next ones no
    # longer than this.
    ANSWER_SECONDS = 5.0

    def __init__(self, rows_per_second: float, processes: int = 1,
                 writers: Writers | None = None, writer: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.limit = float(rows_per_second)
        self.processes = max(1, processes)
        self._writers = writers
        self.writer = writer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._sleep = sleep
        self._bucket = RateLimiter(self.limit / self.processes, clock,
                                   self._wait if writers is not None else sleep)
        self._lock = threading.Lock()
        self._next_beat = float("-inf")
        self._asked_at: float | None = None  # when the beat now awaiting its answer was sent
        self.writers_seen: int | None = None  # live writers at the last look, None before it

    @property
    def rate(self) -> float:
        """This process's share now, in rows per second."""
        return self._bucket.rate

    def acquire(self, rows: int) -> float:
        """Wait until ``rows`` may be written; return the seconds waited."""
        if self._writers is not None:
            self._beat()
        return self._bucket.acquire(rows)

    def _wait(self, seconds: float) -> None:
        """Sleep, beating meanwhile: a writer waiting for its turn (a low limit, many threads)
        still writes for the run."""
        while seconds > 0:
            step = min(seconds, self.HEARTBEAT_SECONDS)
            self._sleep(step)
            seconds -= step
            self._beat()

    def _beat(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next_beat or (self._asked_at is not None
                                         and now - self._asked_at < self.ANSWER_SECONDS):
                return
            self._next_beat = now + self.HEARTBEAT_SECONDS
            self._asked_at = now
        try:
            self._writers.beat(self.writer, self._seen)
        except Exception as error:  # noqa: BLE001 - the last share stays; the next beat retries
            self._seen(error)

    def _seen(self, ages: Mapping[str, float] | Exception) -> None:
        """The ledger's answer: seconds since each writer's last beat (or an error)."""
        with self._lock:
            self._asked_at = None
        if isinstance(ages, Exception):
            _LOG.debug("rate limit: could not beat or read the run's writers in the ledger "
                       "(keeping %.1f rows/s): %s", self.rate, ages)
            return
        live = {writer for writer, age in ages.items() if age <= self.WINDOW_SECONDS}
        live.add(self.writer)  # its beat may not be in what was read
        share = self.limit / len(live)
        changed = len(live) != self.writers_seen
        self.writers_seen = len(live)
        if share != self.rate:
            self._bucket.rate = share
        if changed:
            _LOG.info("rate limit: %d writing process%s share %s rows/s: %s rows/s here",
                      len(live), "es" if len(live) != 1 else "", f"{self.limit:,.0f}",
                      f"{share:,.1f}")


@dataclass(frozen=True)
class RateLimit:
    """MAX_ROWS_PER_SECOND of a run, as its writers receive it (picklable): the run's limit, and
    how many processes the launcher expects to write (each one's static share:
    ``rows_per_second / processes``)."""

    rows_per_second: float
    processes: int = 1

    def limiter(self, ledger: LedgerOptions | None = None) -> RunLimiter:
        """The process's limiter for this limit in the run ``ledger`` records
        (``transforms.ledger.LedgerOptions``; None: the static share), shared by every writer
        of the process."""
        if ledger is None:
            return _LIMITERS.get((self.rows_per_second, self.processes), self.rows_per_second,
                                 self.processes)
        return _LIMITERS.get((self.rows_per_second, self.processes, ledger.run_id,
                              ledger.attempt), self.rows_per_second, self.processes,
                             LiveWriters(ledger))


_LIMITERS: PerProcess[RunLimiter] = PerProcess(RunLimiter)
