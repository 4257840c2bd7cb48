"""Send, keep in flight, retry: what reading pages, writing rows and reconciling counters share.

A request is sent asynchronously at the policy's consistency (``send``); up to ``limit`` of them
run at once (``InFlight``), the oldest completed first when there is no room; a request that
failed is retried synchronously by ``outcome_of``, on the rules of ``transforms.retry`` (the one
place that decides what is retried, how patiently, and when to downgrade).

What a retry sends is the caller's ``resend(consistency)``: the same statement for an idempotent
INSERT, a re-read and a new delta for a counter, a re-check of the target for a row with a
non-frozen list (``transforms.lists``), the same page from its paging state for a read.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from transforms import retry
from transforms.connection import finished

__all__ = ["InFlight", "outcome_of", "resend", "send"]

Item = TypeVar("Item")


class _FailedToSend:
    """The future of a request that could not even be sent: its error comes out of result()."""

    __slots__ = ("_error",)

    def __init__(self, error: BaseException):
        self._error = error

    def result(self):
        raise self._error


def send(session, statement, consistency: int, **options):
    """``session.execute_async`` at ``consistency``; an error raised while sending (a value the
    driver cannot serialize, say) comes out of the future's ``result()`` like any other."""
    statement.consistency_level = consistency
    try:
        return session.execute_async(statement, **options)
    except Exception as error:  # noqa: BLE001 - surfaces where the outcome is handled
        return _FailedToSend(error)


def resend(session, statement) -> Callable[[int], Any]:
    """The plain retry of a request: the same statement, run synchronously at the consistency
    the retry asks for (for ``outcome_of``)."""
    def again(consistency: int):
        statement.consistency_level = consistency
        return session.execute(statement)
    return again


def outcome_of(future, resend: Callable[[int], Any], policy: retry.RetryPolicy,
               describe: Callable[[], str]) -> retry.Outcome:
    """Wait for a request sent at ``policy.consistency``; if it failed, retry it with
    ``resend(consistency)`` as the policy says. The outcome's ``result`` is the last result."""
    try:
        return retry.Outcome(result=finished(future), attempts=1,
                             consistency=policy.consistency)
    except Exception as error:  # noqa: BLE001 - call_with_retries classifies it
        first_error = error
    return retry.call_with_retries(resend, policy, first_error=first_error, describe=describe)


class InFlight(Generic[Item]):
    """Requests running at once, at most ``limit``: adding one when there is no room first
    completes the oldest with ``complete(item)``, which may add more (a counter's UPDATE after
    its read), in the room it freed."""

    def __init__(self, limit: int, complete: Callable[[Item], None]):
        self._limit = limit
        self._complete = complete
        self._items: collections.deque[Item] = collections.deque()

    def __len__(self) -> int:
        return len(self._items)

    def make_room(self) -> None:
        while len(self._items) >= self._limit:
            self.complete_oldest()

    def add(self, item: Item) -> None:
        self.make_room()
        self._items.append(item)

    def complete_oldest(self) -> None:
        self._complete(self._items.popleft())

    def drain(self) -> None:
        while self._items:
            self.complete_oldest()
