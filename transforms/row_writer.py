"""What every row-writing DoFn shares: the session, the table's key columns, the per-table
counters, the rate limit, and the buffered FAILED_ROWS / DOWNGRADED_ROWS outputs.

Subclasses (``write._WriteRowsFn``, ``counters._WriteCountersFn``) send requests and call
``_written``, ``_downgraded`` and ``_dead_letter``; they override ``_complete_all`` to wait for
what is still in flight when a bundle ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms import dead_letters, progress, retry
from transforms.connection import CassandraConnection, shared_sessions
from transforms.rate_limit import shared_limiter

_LOG = logging.getLogger("transforms.write")


class RowWriterFn(beam.DoFn):
    FAILED_ROWS = "failed_rows"
    DOWNGRADED_ROWS = "downgraded_rows"
    COUNTERS = ("rows_written", "rows_failed", "write_retries", "consistency_downgrades")

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 policy: retry.RetryPolicy, max_in_flight: int, metrics_namespace: str,
                 max_rows_per_second: float | None = None):
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._policy = policy
        self._max_in_flight = max_in_flight
        self._namespace = metrics_namespace
        self._max_rows_per_second = max_rows_per_second
        self._label = f"{keyspace}.{table}"

    def setup(self):
        self._session = shared_sessions.acquire(self._connection)
        self._table_metadata = (self._session.cluster.metadata.keyspaces[self._keyspace]
                                .tables[self._table])
        self._partition_key = tuple(column.name for column in self._table_metadata.partition_key)
        self._clustering_key = tuple(column.name
                                     for column in self._table_metadata.clustering_key)
        self._key_columns = self._partition_key + self._clustering_key
        self._counters = {name: Metrics.counter(self._namespace, name) for name in self.COUNTERS}
        self._activity = Metrics.distribution(self._namespace, "activity_epoch_ms")
        self._progress = progress.tracker()
        self._limiter = (shared_limiter(self._max_rows_per_second)
                         if self._max_rows_per_second else None)

    def teardown(self):
        shared_sessions.release(self._connection)

    def start_bundle(self):
        self._outputs: list[tuple[str, dict]] = []

    def finish_bundle(self):
        self._complete_all()
        self._activity.update(int(time.time() * 1000))
        for tag, record in self._take_outputs():
            yield beam.pvalue.TaggedOutput(tag, GlobalWindows.windowed_value(record))

    def _complete_all(self):
        """Wait for every request still in flight (and handle its outcome)."""
        raise NotImplementedError

    def _limit(self, rows: int) -> None:
        if self._limiter is not None:
            self._limiter.acquire(rows)

    # ----------------------------------------------------------------- outcomes

    def _written(self, rows: int) -> None:
        self._counters["rows_written"].inc(rows)
        self._progress.add(self._namespace, rows)

    def _downgraded(self, rows: list[Mapping], consistency: int) -> None:
        """Rows written at the fallback level: counted and listed for a later repair."""
        self._counters["consistency_downgrades"].inc(len(rows))
        level = retry.consistency_name(consistency)
        for row in rows:
            self._outputs.append((self.DOWNGRADED_ROWS, {
                "table": self._label, **self._key_of(row), "consistency": level}))

    def _dead_letter(self, row: Mapping, outcome: retry.Outcome, what: str = "row",
                     groups: list | None = None, replayable: bool = True) -> None:
        """A row that could not be written: counted, logged with its key, and kept."""
        self._counters["rows_failed"].inc()
        key = self._key_of(row)
        _LOG.error("%s not written to %s (partition %s, clustering %s) after %d attempts: %s: %s",
                   what, self._label, key["partition_key"], key["clustering"],
                   outcome.attempts, type(outcome.error).__name__, outcome.error,
                   exc_info=outcome.error)
        record = dead_letters.failed_row_record(self._keyspace, self._table, key, row, outcome,
                                                groups)
        if not replayable:
            record["cql"] = None
        self._outputs.append((self.FAILED_ROWS, record))

    def _key_of(self, row: Mapping) -> dict:
        return {
            "partition_key": {name: dead_letters.to_json(row.get(name))
                              for name in self._partition_key},
            "clustering": {name: dead_letters.to_json(row.get(name))
                           for name in self._clustering_key},
        }

    def _take_outputs(self):
        outputs, self._outputs = self._outputs, []
        return outputs

    def _drain_outputs(self):
        for tag, record in self._take_outputs():
            yield beam.pvalue.TaggedOutput(tag, record)


def write_in_bundles(rows, batch_size: int, step: str, writer: RowWriterFn):
    """rows -> bundles of at most ``batch_size`` (fused, no shuffle) -> ``writer``; returns its
    outputs: ``written`` (nothing), ``failed_rows`` and ``downgraded_rows``."""
    return (
        rows
        | "Bundle" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size,
                                         record_metrics=False)
        | step >> beam.ParDo(writer).with_outputs(
            RowWriterFn.FAILED_ROWS, RowWriterFn.DOWNGRADED_ROWS, main="written")
    )
