"""MAX_ROWS_PER_SECOND shared through a real run ledger: two writers (two limiters with their own
writer ids, as two processes would have) beat in one ``writers`` table of the target cluster
and together hold the run's limit; when one stops, the other takes the whole limit within the
window."""

from __future__ import annotations

import threading
import time

import pytest

from transforms.connection import CassandraConnection, shared_sessions
from transforms.ledger import Ledger, LedgerOptions, LiveWriters, new_run_id
from transforms.rate_limit import RunLimiter

LIMIT = 2_000
BUNDLE = 20


class Writer:
    """A thread that acquires bundles from its limiter until told to stop, counting rows."""

    def __init__(self, limiter: RunLimiter):
        self.limiter = limiter
        self.rows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.limiter.acquire(BUNDLE)
            self.rows += BUNDLE

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def _rate_over(writers: list[Writer], seconds: float) -> float:
    before = sum(writer.rows for writer in writers)
    started = time.monotonic()
    time.sleep(seconds)
    return (sum(writer.rows for writer in writers) - before) / (time.monotonic() - started)


@pytest.fixture
def ledger(keyspace, cassandra_hosts, target_session):
    """A ledger in the test's keyspace of the target, and the process's shared session of it
    held meanwhile (as the writers hold it in a pipeline)."""
    Ledger.create_schema(target_session, keyspace)
    options = LedgerOptions(CassandraConnection((cassandra_hosts[1],)), keyspace, new_run_id(),
                            "attempt-1")
    shared_sessions.acquire(options.connection)
    yield options
    shared_sessions.release(options.connection)


def test_two_writers_share_the_limit_and_one_takes_it_all_when_the_other_stops(ledger):
    a = RunLimiter(LIMIT, 2, LiveWriters(ledger), writer="writer-a")
    b = RunLimiter(LIMIT, 2, LiveWriters(ledger), writer="writer-b")
    writers = [Writer(a), Writer(b)]
    try:
        time.sleep(1)
        assert (a.writers_seen, b.writers_seen) == (2, 2)
        assert a.rate == b.rate == LIMIT / 2
        together = _rate_over(writers, 6)
        assert LIMIT * 0.95 <= together <= LIMIT * 1.05, together

        writers[1].stop()
        # b's last beat leaves the window, and a's next look sees it gone.
        time.sleep(RunLimiter.WINDOW_SECONDS + 2 * RunLimiter.HEARTBEAT_SECONDS)
        assert (a.writers_seen, a.rate) == (1, LIMIT)
        alone = _rate_over(writers[:1], 4)
        assert LIMIT * 0.95 <= alone <= LIMIT * 1.05, alone
    finally:
        for writer in writers:
            writer.stop()


def test_an_older_ledger_gets_the_writers_table(ledger, target_session):
    target_session.execute(f"DROP TABLE {ledger.keyspace}.writers")
    target_session.cluster.refresh_schema_metadata()
    Ledger.create_schema(target_session, ledger.keyspace)
    assert "writers" in target_session.cluster.metadata.keyspaces[ledger.keyspace].tables
