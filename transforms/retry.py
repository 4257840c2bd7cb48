"""The one place that decides whether a failed Cassandra request is retried, when, and how.

Recoverable: Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut (client-side timeout),
NoHostAvailable and Overloaded. They are retried up to ``retries`` times with exponential backoff
and jitter (Beam's ``FuzzedExponentialIntervals``). Unavailable and the server-side timeouts
mean the replicas could not meet the consistency level, so the retry may *downgrade* it to the
fallback level (QUORUM -> ONE): that retry is immediate, the others wait. Everything else
(InvalidRequest, a guardrail, a schema error, a bad value) is final at once.

Writes are retried, so they must be idempotent: plain INSERTs of whole rows are; counter updates
are not (a timeout can hide an applied increment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apache_beam.utils.retry import FuzzedExponentialIntervals
from cassandra import (
    ConsistencyLevel,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage

_LOG = logging.getLogger(__name__)

RECOVERABLE_ERRORS = (Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut, NoHostAvailable,
                      OverloadedErrorMessage)
DOWNGRADABLE_ERRORS = (Unavailable, ReadTimeout, WriteTimeout)


def _causes(error: BaseException) -> list[BaseException]:
    """The per-host errors inside a NoHostAvailable, or the error itself."""
    if isinstance(error, NoHostAvailable) and getattr(error, "errors", None):
        inner = [cause for cause in error.errors.values() if isinstance(cause, BaseException)]
        if inner:
            return inner
    return [error]


def is_recoverable(error: BaseException) -> bool:
    return isinstance(error, RECOVERABLE_ERRORS)


def is_downgradable(error: BaseException) -> bool:
    """Unavailable or a server-side timeout, also when every host answered so."""
    return all(isinstance(cause, DOWNGRADABLE_ERRORS) for cause in _causes(error))


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

    @property
    def ok(self) -> bool:
        return self.error is None


def call_with_retries(
    execute: Callable[[int], Any],
    policy: RetryPolicy,
    *,
    describe: Callable[[], str],
    first_error: BaseException | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run ``execute(consistency_level)`` until it succeeds, fails for good, or retries run out.

    ``first_error`` is the error of an attempt already made (asynchronously) at the policy's
    consistency; the loop then starts from its retry. ``describe`` names the request for logs.
    """
    outcome = Outcome(consistency=policy.consistency)
    backoffs = iter(policy.backoffs())
    error = first_error
    if error is not None:
        outcome.attempts = 1
    while True:
        if error is None:
            try:
                outcome.attempts += 1
                outcome.result = execute(outcome.consistency)
                return outcome
            except Exception as raised:  # noqa: BLE001 - classified just below
                error = raised
        if not is_recoverable(error):
            outcome.error = error
            return outcome
        delay = next(backoffs, None)
        if delay is None:
            _LOG.error("%s failed after %d attempts at %s: %s: %s", describe(), outcome.attempts,
                       consistency_name(outcome.consistency), type(error).__name__, error)
            outcome.error = error
            return outcome
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
