"""Progress lines: rows written so far, the current rate and the estimate (pure logic)."""

from __future__ import annotations

import logging
import time

from transforms.progress import ProgressTracker


def test_progress_is_logged_with_rate_and_estimate(caplog):
    tracker = ProgressTracker()
    tracker.interval = 0.05
    tracker.estimated_total = 5000
    caplog.set_level(logging.INFO, logger="migrator.progress")
    tracker.add("ks.a->ks.a", 1200)
    tracker.add("ks.b->ks.b", 300)
    deadline = time.monotonic() + 5
    while "progress:" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    tracker.stop()
    assert tracker.total() == 1500
    assert "progress: 1,500 rows written of about 5,000 (estimate)" in caplog.text
    assert "rows/s now" in caplog.text and "rows/s overall" in caplog.text
