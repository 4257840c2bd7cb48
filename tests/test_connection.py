"""finished(): a completed request is freed by reference counting, not left to the cyclic GC."""

from __future__ import annotations

import gc
import time
import weakref

from transforms.connection import finished


def _freed_without_the_collector(session, take) -> bool:
    """Whether a finished request is freed within 5 s while the cyclic collector is off."""
    gc.collect()
    gc.disable()
    try:
        future = session.execute_async("SELECT release_version FROM system.local")
        rows = take(future)
        assert rows.one().release_version
        reference = weakref.ref(future)
        del future, rows
        deadline = time.monotonic() + 5
        # The cancelled timer leaves the driver's timer queue within a moment.
        while reference() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return reference() is None
    finally:
        gc.enable()


def test_finished_breaks_the_cycle_between_a_future_and_its_timer(source_session):
    assert not _freed_without_the_collector(source_session, lambda future: future.result())
    assert _freed_without_the_collector(source_session, finished)
