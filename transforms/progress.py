"""Progress of a running migration: rows written so far and the current rate, every few seconds.

Writers add to a process-wide tracker; a reporter thread in the same process shows the totals,
as a progress bar on a terminal or as log lines otherwise. On the DirectRunner the writers run
in the launching process, so the person who started the run sees it; on distributed runners
each worker process reports its own share in its log.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

_LOG = logging.getLogger("migrator.progress")


class ProgressTracker:
    def __init__(self):
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}
        self._reporter: threading.Thread | None = None
        self._stop = threading.Event()
        self.estimated_total: int | None = None
        self.interval = 10.0
        self.use_bar = False

    def add(self, name: str, rows: int) -> None:
        with self._lock:
            self._rows[name] = self._rows.get(name, 0) + rows
        if self._reporter is None:
            self.start()

    def total(self) -> int:
        with self._lock:
            return sum(self._rows.values())

    def start(self) -> None:
        with self._lock:
            if self._reporter is not None:
                return
            self._stop.clear()
            self._reporter = threading.Thread(target=self._report, name="migration-progress",
                                              daemon=True)
            self._reporter.start()

    def stop(self) -> None:
        self._stop.set()
        reporter, self._reporter = self._reporter, None
        if reporter is not None:
            reporter.join(timeout=5)

    def _report(self) -> None:
        bar = None
        if self.use_bar:
            from tqdm import tqdm

            bar = tqdm(total=self.estimated_total, unit="rows", unit_scale=True,
                       desc="migrating", file=sys.stderr, mininterval=1.0)
        started = last_time = time.monotonic()
        last_total = 0
        while not self._stop.wait(1.0 if bar else self.interval):
            total, now = self.total(), time.monotonic()
            if bar is not None:
                bar.update(total - bar.n)
            else:
                rate = (total - last_total) / max(now - last_time, 1e-9)
                estimate = (f" of about {self.estimated_total:,} (estimate)"
                            if self.estimated_total else "")
                _LOG.info("progress: %s rows written%s, %.0f rows/s now, %.0f rows/s overall",
                          f"{total:,}", estimate, rate, total / max(now - started, 1e-9))
            last_total, last_time = total, now
        if bar is not None:
            bar.update(self.total() - bar.n)
            bar.close()


_TRACKER = ProgressTracker()


def tracker() -> ProgressTracker:
    return _TRACKER
