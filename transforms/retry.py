"""The one place that decides whether a failed Cassandra request is retried, when, and how.

Recoverable: Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut (client-side timeout),
NoHostAvailable, Overloaded and a lost connection. They are retried up to ``retries`` times
with exponential backoff and jitter (Beam's ``FuzzedExponentialIntervals``). Unavailable and
the server-side timeouts mean the replicas could not meet the consistency level, so the retry
may *downgrade* it to the fallback level (QUORUM -> ONE): that retry is immediate, the others
wait. Everything else (InvalidRequest, a guardrail, a schema error, a bad value) is final at
once.

An outage is waited out instead: when a request finds no host of the cluster to take it (the
driver's NoHostAvailable with no host up, or every host refusing or dropping its connection),
the retry does not use up an attempt; it waits, with backoff up to 2 s and a log line at least
every 10 s, until the cluster answers again or ``outage_wait`` seconds have passed, and only then
counts retries as usual. A node restart costs the restart's time, not a dead letter.

Writes are retried, so they must be idempotent: plain INSERTs of whole rows are; counter updates
are not (a timeout can hide an applied increment).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apache_beam.utils.retry import FuzzedExponentialIntervals
from cassandra import (
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.protocol import OverloadedErrorMessage, ServerError

from transforms.process_cache import PerProcess

_LOG = logging.getLogger(__name__)

RECOVERABLE_ERRORS = (Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut, NoHostAvailable,
                      OverloadedErrorMessage, ConnectionException)
DOWNGRADABLE_ERRORS = (Unavailable, ReadTimeout, WriteTimeout)


def _causes(error: BaseException) -> list[BaseException]:
    """The per-host errors inside a NoHostAvailable, or the error itself."""
    if isinstance(error, NoHostAvailable) and getattr(error, "errors", None):
        inner = [cause for cause in error.errors.values() if isinstance(cause, BaseException)]
        if inner:
            return inner
    return [error]


_UNREACHABLE = (ConnectionException, OperationTimedOut, OSError)


def _is_shutting_down(error: BaseException) -> bool:
    """A node being stopped (drained) still answers for a few seconds, with "Server is shutting
    down": it is going away, as good as unreachable."""
    return isinstance(error, OverloadedErrorMessage) and "shutting down" in str(error).lower()


def is_outage(error: BaseException) -> bool:
    """No host could take the request: none is up, or each one's connection failed (a lone
    connection error is the driver's word for the same, on a request already sent), or the
    node that answered is shutting down (on a larger cluster, waiting lets the driver see it go
    and route to the other replicas; on a one-node cluster it is the outage's beginning)."""
    if isinstance(error, ConnectionException) or _is_shutting_down(error):
        return True
    if not isinstance(error, NoHostAvailable):
        return False
    causes = [cause for cause in (getattr(error, "errors", None) or {}).values()]
    return all(isinstance(cause, _UNREACHABLE) or _is_shutting_down(cause) for cause in causes)


class TableStopped(Exception):
    """Raised instead of resending a request for a table that was stopped (error budget, or a
    table the target refuses): its rows are left for a resume, not retried."""


def is_recoverable(error: BaseException) -> bool:
    return isinstance(error, RECOVERABLE_ERRORS)


def is_downgradable(error: BaseException) -> bool:
    """Unavailable or a server-side timeout, also when every host answered so."""
    return all(isinstance(cause, DOWNGRADABLE_ERRORS) for cause in _causes(error))


# What the target says when the table itself is wrong: every later row would fail the same way.
_TABLE_FATAL_MESSAGES = ("unconfigured table", "does not exist", "undefined column name",
                         "unknown identifier")


def is_table_fatal(error: BaseException | None) -> bool:
    """The table (or keyspace, or a column) is missing or changed on the target: not a
    problem of one row, and not one a retry can fix. (A table dropped while a request was on
    its way ends in a server error naming an unknown column family.)"""
    if isinstance(error, InvalidRequest):
        message = str(error).lower()
        return any(text in message for text in _TABLE_FATAL_MESSAGES)
    return isinstance(error, ServerError) and "unknown cf" in str(error).lower()


def consistency_name(level: int | None) -> str:
    return ConsistencyLevel.value_to_name.get(level, str(level))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry, and which consistency levels to use."""

    retries: int = 3
    consistency: int = ConsistencyLevel.QUORUM
    fallback_consistency: int | None = ConsistencyLevel.ONE
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    outage_wait: float = 600.0
    # Names the cluster: the requests of a process to one cluster share what they know of an
    # outage (when it began), so its wait runs out once for all of them, not per request.
    cluster: str | None = None

    def backoffs(self) -> list[float]:
        return list(FuzzedExponentialIntervals(self.initial_backoff, self.retries,
                                               max_delay_secs=self.max_backoff))

    def should_downgrade(self, error: BaseException, level: int) -> bool:
        return (self.fallback_consistency is not None
                and level != self.fallback_consistency
                and is_downgradable(error))


@dataclass
class Outcome:
    """What a request with retries ended in."""

    result: Any = None
    error: BaseException | None = None
    attempts: int = 0
    retries: int = 0
    consistency: int | None = None
    downgraded: bool = False
    outage: tuple[float, float] | None = None  # (start, end) of the time spent waiting

    @property
    def ok(self) -> bool:
        return self.error is None


# Seconds between two tries while a cluster is unreachable: a try costs nothing then (the driver
# fails at once with no host up), and the run should carry on soon after the cluster is back.
OUTAGE_BACKOFF_MAX = 2.0
OUTAGE_LOG_EVERY = 10.0


def call_with_retries(
    execute: Callable[[int], Any],
    policy: RetryPolicy,
    *,
    describe: Callable[[], str],
    first_error: BaseException | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run ``execute(consistency_level)`` until it succeeds, fails for good, or retries run out.

    ``first_error`` is the error of an attempt already made (asynchronously) at the policy's
    consistency; the loop then starts from its retry. ``describe`` names the request for logs.
    An outage (``is_outage``) is waited out for up to ``policy.outage_wait`` seconds without
    using up retries; the outcome's ``outage`` says when the waiting began and ended.
    """
    outcome = Outcome(consistency=policy.consistency)
    backoffs = iter(policy.backoffs())
    error = first_error
    if error is not None:
        outcome.attempts = 1
    outage_began = last_log = None
    outage_backoff = 0.5
    shared = _OUTAGES.get(policy.cluster) if policy.cluster is not None else None
    while True:
        if error is None:
            try:
                outcome.attempts += 1
                outcome.result = execute(outcome.consistency)
                if shared is not None:
                    shared.up()
                return _ended(outcome, outage_began, clock)
            except Exception as raised:  # noqa: BLE001 - classified just below
                error = raised
        if not is_recoverable(error):
            outcome.error = error
            return _ended(outcome, outage_began, clock)
        now = clock()
        if is_outage(error):
            began = shared.down(now) if shared is not None else (outage_began or now)
            if now - began < policy.outage_wait:
                if outage_began is None:
                    # The first retry is at once: the error may be older than the outage's end
                    # (a request that failed while the cluster was down, taken up only now).
                    outage_began = last_log = now
                    _LOG.warning("%s: the cluster is unreachable (%s); waiting for it, up to "
                                 "%.0f s", describe(), error, policy.outage_wait)
                else:
                    if now - last_log >= OUTAGE_LOG_EVERY:
                        last_log = now
                        _LOG.warning("%s: the cluster has been unreachable for %.0f s; still "
                                     "waiting (up to %.0f s)", describe(), now - began,
                                     policy.outage_wait)
                    sleep(min(outage_backoff, policy.outage_wait - (now - began)))
                    outage_backoff = min(outage_backoff * 2, OUTAGE_BACKOFF_MAX)
                error = None
                continue
        delay = next(backoffs, None)
        if delay is None:
            _LOG.error("%s failed after %d attempts at %s: %s: %s", describe(), outcome.attempts,
                       consistency_name(outcome.consistency), type(error).__name__, error)
            outcome.error = error
            return _ended(outcome, outage_began, clock)
        outcome.retries += 1
        if policy.should_downgrade(error, outcome.consistency):
            _LOG.warning("%s: %s at %s; downgrading to %s and retrying", describe(),
                         type(error).__name__, consistency_name(outcome.consistency),
                         consistency_name(policy.fallback_consistency))
            outcome.consistency = policy.fallback_consistency
            outcome.downgraded = True
        else:
            _LOG.warning("%s: %s at %s (attempt %d); retrying in %.2fs", describe(),
                         type(error).__name__, consistency_name(outcome.consistency),
                         outcome.attempts, delay, exc_info=error)
            sleep(delay)
        error = None


def _ended(outcome: Outcome, outage_began: float | None, clock) -> Outcome:
    if outage_began is not None:
        outcome.outage = (outage_began, clock())
        _LOG.warning("the cluster answers again after %.0f s", outcome.outage[1] - outage_began)
    return outcome


class _Outage:
    """When a cluster became unreachable, as the requests of this process found it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._began: float | None = None

    def down(self, now: float) -> float:
        with self._lock:
            if self._began is None:
                self._began = now
            return self._began

    def up(self) -> None:
        with self._lock:
            self._began = None


_OUTAGES: PerProcess[_Outage] = PerProcess(_Outage)


class OutageClock:
    """Seconds a table waited for unreachable clusters, counted once however many of a
    process's requests waited at the same time: the union of their waiting intervals."""

    def __init__(self):
        self._lock = threading.Lock()
        self._covered_until = float("-inf")

    def add(self, interval: tuple[float, float]) -> float:
        """Seconds of ``interval`` not counted before."""
        start, end = interval
        with self._lock:
            new = max(0.0, end - max(start, self._covered_until))
            self._covered_until = max(self._covered_until, end)
        return new

    def new_milliseconds(self, outcome: Outcome) -> int:
        """Milliseconds of an outcome's outage wait not counted before (0 without one)."""
        return 0 if outcome.outage is None else int(self.add(outcome.outage) * 1000)


_CLOCKS: PerProcess[OutageClock] = PerProcess(OutageClock)


def outage_clock(namespace: str) -> OutageClock:
    return _CLOCKS.get(namespace)
