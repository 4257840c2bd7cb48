"""Progress lines: rows and bytes written, the rates, the estimate and the time left, write
latency percentiles, retries, downgrades and dead letters (pure logic), and latencies measured
on real writes to the target."""

from __future__ import annotations

import logging
import re
import time

from tests.helpers import run_migration, write_settings
from tools import sample_data
from transforms import progress
from transforms.progress import LatencyHistogram, ProgressTracker


def test_progress_is_logged_with_rate_and_estimate(caplog):
    tracker = ProgressTracker()
    tracker.interval = 0.05
    tracker.estimated_total = 5000
    caplog.set_level(logging.INFO, logger="migrator.progress")
    tracker.add("ks.a->ks.a", 1200, size=2_000_000)
    tracker.add("ks.b->ks.b", 300, size=500_000)
    tracker.count("retries", 3)
    tracker.count("dead letters")
    for _ in range(98):
        tracker.latency.record(0.002)
    for _ in range(2):
        tracker.latency.record(0.5)
    deadline = time.monotonic() + 5
    while "progress:" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    tracker.stop()
    assert tracker.total() == 1500
    assert "progress: 1,500 rows (2.5 MB) written of about 5,000 (estimate)" in caplog.text
    assert "rows/s now" in caplog.text and "rows/s overall" in caplog.text
    assert ", ETA " in caplog.text
    assert re.search(r"write latency p50 2\.\d ms p99 [4-6]\d\d\.\d ms", caplog.text)
    assert "3 retries, 0 downgrades, 1 dead letters" in caplog.text


def test_percentiles_are_within_a_bucket_of_the_truth():
    histogram = LatencyHistogram()
    for milliseconds in range(1, 1001):  # 1 ms .. 1 s, evenly
        histogram.record(milliseconds / 1000)
    counts = histogram.take()
    assert sum(counts) == 1000 and sum(histogram.take()) == 0  # taken, and reset
    for share, truth in ((0.5, 500), (0.99, 990)):
        found = LatencyHistogram.percentile(counts, share)
        assert truth <= found <= truth * LatencyHistogram.FACTOR
    assert LatencyHistogram.percentile([0] * LatencyHistogram.BUCKETS, 0.5) is None


def test_writes_to_the_target_are_timed(tmp_path, keyspace, cassandra_hosts, source_session,
                                        target_session, monkeypatch):
    """Every request of a real migration reaches the histogram through the driver's callback."""
    tracker = progress.tracker()
    monkeypatch.setattr(tracker, "interval", 3600.0)  # no report takes the counts mid-run
    tracker.latency.take()
    sample_data.fill_table(source_session, keyspace, "events", 2_000, "mixed")
    sample_data.create_table(target_session, keyspace, "events")
    settings = write_settings(tmp_path, cassandra_hosts[0], cassandra_hosts[1], keyspace,
                              ["events"], BATCH_MODE="NONE", LEDGER_KEYSPACE=None)

    code, summary = run_migration(settings)

    assert code == 0
    counts = tracker.latency.take()
    assert sum(counts) == 2_000  # BATCH_MODE NONE: one request per row, each timed
    line = tracker.line(10.0, 0.0, counts)
    assert re.search(r"write latency p50 [\d.]+ ms p99 [\d.]+ ms", line)
    (table,) = summary["tables"]
    assert table["bytes_written"] > 2_000 * 16  # every row carries a 16-byte payload
    assert table["rows_per_second"] > 0 and table["mb_per_second"] >= 0
