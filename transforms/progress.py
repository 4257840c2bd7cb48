"""Progress of a running migration, every few seconds: rows and bytes written, the rate now and
overall, the time left where an estimate exists, how the target copes (write latency p50/p99 over
the last interval) and the retries, downgrades and dead letters so far.

Writers add to a process-wide tracker; a reporter thread in the same process shows the totals,
as a progress bar on a terminal or as log lines otherwise. On the DirectRunner the writers run
in the launching process, so the person who started the run sees it; on distributed runners
each worker process reports its own share in its log.

Latency costs little per request and nothing per row: the writer hands each request's future to
``watch``, whose callback (on the driver's event loop) adds the time from send to answer to a
fixed histogram of log-spaced buckets (``LatencyHistogram``); the reporter takes and resets it
each interval, so the percentiles are of the last interval only.
"""

from __future__ import annotations

import datetime
import logging
import math
import sys
import threading
import time

_LOG = logging.getLogger("migrator.progress")


class LatencyHistogram:
    """Durations in BUCKETS log-spaced buckets (each FACTOR times as wide as the one before,
    from LOWEST_MS): a percentile is known to within one bucket (25 %), in constant memory and
    with an increment per value."""

    LOWEST_MS = 0.05
    FACTOR = 1.25
    BUCKETS = 72  # up to about 0.05 ms x 1.25**72, some 480 s

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = [0] * self.BUCKETS
        self._log_factor = math.log(self.FACTOR)

    def record(self, seconds: float) -> None:
        milliseconds = seconds * 1000.0
        index = (0 if milliseconds <= self.LOWEST_MS else
                 min(int(math.log(milliseconds / self.LOWEST_MS) / self._log_factor) + 1,
                     self.BUCKETS - 1))
        with self._lock:
            self._counts[index] += 1

    def take(self) -> list[int]:
        """The counts so far, and a fresh start."""
        with self._lock:
            counts, self._counts = self._counts, [0] * self.BUCKETS
        return counts

    @classmethod
    def percentile(cls, counts: list[int], share: float) -> float | None:
        """The upper bound, in milliseconds, of the bucket that holds the ``share`` quantile;
        None without values."""
        total = sum(counts)
        if not total:
            return None
        wanted, seen = share * total, 0
        for index, count in enumerate(counts):
            seen += count
            if seen >= wanted:
                return cls.LOWEST_MS * cls.FACTOR ** index
        return cls.LOWEST_MS * cls.FACTOR ** (cls.BUCKETS - 1)


# What the writers count beside rows, in the order the progress line names them.
EVENTS = ("retries", "downgrades", "dead letters")


class ProgressTracker:
    def __init__(self):
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}
        self._bytes = 0
        self._events = dict.fromkeys(EVENTS, 0)
        self.latency = LatencyHistogram()
        self._reporter: threading.Thread | None = None
        self._stop = threading.Event()
        self.estimated_total: int | None = None
        self.interval = 10.0
        self.use_bar = False

    def add(self, name: str, rows: int, size: int = 0) -> None:
        """``rows`` written to table ``name``, ``size`` bytes of values."""
        with self._lock:
            self._rows[name] = self._rows.get(name, 0) + rows
            self._bytes += size
        if self._reporter is None:
            self.start()

    def count(self, event: str, number: int = 1) -> None:
        """Retries, downgrades or dead letters (``EVENTS``)."""
        with self._lock:
            self._events[event] += number

    def watch(self, future) -> None:
        """Time a request from now to its answer (or error) into ``latency``."""
        add_callbacks = getattr(future, "add_callbacks", None)
        if add_callbacks is None:
            return  # not sent at all
        started, record = time.perf_counter(), self.latency.record

        def answered(_):
            record(time.perf_counter() - started)

        add_callbacks(answered, answered)

    def total(self) -> int:
        with self._lock:
            return sum(self._rows.values())

    def snapshot(self) -> tuple[int, int, dict[str, int]]:
        """(rows, bytes, events) so far."""
        with self._lock:
            return sum(self._rows.values()), self._bytes, dict(self._events)

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

    def line(self, elapsed: float, rate_now: float, latencies: list[int]) -> str:
        """The facts of one report, as one line (``progress: ...`` without the prefix)."""
        total, size, events = self.snapshot()
        overall = total / max(elapsed, 1e-9)
        text = f"{total:,} rows ({size / 1e6:,.1f} MB) written"
        if self.estimated_total:
            text += f" of about {self.estimated_total:,} (estimate)"
        text += f", {rate_now:,.0f} rows/s now, {overall:,.0f} rows/s overall"
        if self.estimated_total and overall > 0:
            left = max(self.estimated_total - total, 0) / overall
            text += f", ETA {datetime.timedelta(seconds=round(left))}"
        p50 = LatencyHistogram.percentile(latencies, 0.50)
        p99 = LatencyHistogram.percentile(latencies, 0.99)
        if p50 is not None:
            text += f"; write latency p50 {p50:,.1f} ms p99 {p99:,.1f} ms"
        else:
            text += "; write latency: no answers this interval"
        text += "; " + ", ".join(f"{events[event]:,} {event}" for event in EVENTS)
        return text

    def _report(self) -> None:
        bar = None
        if self.use_bar:
            from tqdm import tqdm

            bar = tqdm(total=self.estimated_total, unit="rows", unit_scale=True,
                       desc="migrating", file=sys.stderr, mininterval=1.0)
        started = last_time = last_line = time.monotonic()
        last_total = 0
        while not self._stop.wait(1.0 if bar else self.interval):
            total, now = self.total(), time.monotonic()
            if bar is not None:
                bar.update(total - bar.n)
                if now - last_line < self.interval:
                    continue  # the bar moves every second; its facts every interval
            taken = self.latency.take()
            rate = (total - last_total) / max(now - last_time, 1e-9)
            text = self.line(now - started, rate, taken)
            if bar is not None:
                bar.set_postfix_str(text.split(", ", 1)[1] if ", " in text else text)
            else:
                _LOG.info("progress: %s", text)
            last_total, last_time, last_line = total, now, now
        if bar is not None:
            bar.update(self.total() - bar.n)
            bar.close()


_TRACKER = ProgressTracker()


def tracker() -> ProgressTracker:
    return _TRACKER
