"""One object per key per worker process, shared by the process's threads (its DoFn instances):
a session per cluster, a rate limiter, a dead-letter file, a table's run control."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class PerProcess(Generic[Value]):
    def __init__(self, make: Callable[..., Value]):
        self._make = make
        self._lock = threading.Lock()
        self._values: dict[Hashable, Value] = {}

    def get(self, key: Hashable, *args) -> Value:
        """The process's object for ``key``, made with ``make(*args)`` the first time."""
        with self._lock:
            value = self._values.get(key)
            if value is None:
                value = self._values[key] = self._make(*args)
            return value
