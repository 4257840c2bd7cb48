"""WriteToCassandra: write a PCollection of row dicts to a table, with retries, consistency
downgrade, batch fallback and a dead-letter output, never stopping the pipeline for a bad row.

Shape: rows -> ``BatchElements`` (bundles of at most ``batch_size`` rows, fused, no shuffle) ->
a DoFn that turns each bundle into requests and keeps up to ``max_in_flight`` of them running
asynchronously, so the network and the cluster stay busy while Python prepares the next ones.
A counter table is detected from the target's schema when the DoFn starts and written by
reconciliation instead (``transforms.counters``); everything below is about other tables.

Batching (``BatchMode``):
  * REPLICA_SET (default): rows whose partitions have the same replicas share an UNLOGGED batch
    (dsbulk's idea): fewer requests, and each batch still lands on nodes that own all of it.
    Measured here three times as fast as PARTITION on narrow rows (BENCHMARKS.md).
  * PARTITION: rows of one partition share an UNLOGGED batch; rows of different partitions are
    separate requests, routed token-aware and run concurrently.
  * BUNDLE: one UNLOGGED batch per bundle, whatever it spans (the old script's behaviour).
  * NONE: every row is its own request.
No batch carries more than ``max_batch_bytes`` of values (``transforms.inserts``). The
consistency level is set on the statement actually sent (on a batch, the levels of the
statements inside it are ignored by Cassandra).

Failure handling, in order: a recoverable error is retried with backoff, and with a downgrade
from the write level to the fallback level on Unavailable or a timeout (``transforms.retry``,
through ``transforms.requests``); a batch that still fails is written again row by row; a row
that still fails goes to the ``FAILED_ROWS`` output with its key, error and full row, and to the
log. Every row written at the fallback level goes to the ``DOWNGRADED_ROWS`` output, to be
repaired later.

Writes are retried, so they must be idempotent: INSERTs of whole rows are, except for
non-frozen lists written with their writetimes, which ``transforms.lists`` guards before the
first write and before every resend. Nulls are written as UNSET: a copy creates no tombstones.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Mapping

import apache_beam as beam

from transforms import retry
from transforms.cells import VALUES_ONLY, CellOptions
from transforms.connection import CassandraConnection, shared_sessions, table_metadata
from transforms.counters import _WriteCountersFn
from transforms.inserts import InsertStatements, request_for, within_bytes
from transforms.ledger import ControlOptions
from transforms.lists import ListGuard, list_columns
from transforms.rate_limit import RateLimit
from transforms.requests import InFlight, outcome_of, send
from transforms.row_writer import ItemTally, RowWriterFn, write_in_bundles
from transforms.token_ranges import ReplicaSets
from transforms.values import register_user_types

__all__ = ["BatchMode", "WriteToCassandra"]

_LOG = logging.getLogger(__name__)


class BatchMode(str, enum.Enum):
    PARTITION = "PARTITION"
    REPLICA_SET = "REPLICA_SET"
    BUNDLE = "BUNDLE"
    NONE = "NONE"


class _Request:
    """A statement on its way, with the rows it writes (as given, lists included), whether a
    resend must first ask the list guard again (a row in it still writes a list), the work
    item its rows belong to, and the bytes of values it carries."""

    __slots__ = ("statement", "rows", "guarded", "tally", "size", "future")

    def __init__(self, statement, rows, guarded: bool, tally: ItemTally, size: int = 0):
        self.statement = statement
        self.rows = rows
        self.guarded = guarded
        self.tally = tally
        self.size = size  # bytes of values
        self.future = None


class _WriteRowsFn(RowWriterFn):
    COUNTERS = (*RowWriterFn.COUNTERS, "batch_fallbacks")

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 policy: retry.RetryPolicy, batch_mode: BatchMode, max_in_flight: int,
                 metrics_namespace: str, cells: CellOptions = VALUES_ONLY,
                 rate: RateLimit | None = None, max_batch_bytes: int = 40 * 1024,
                 dead_letter_prefix: str | None = None, control: ControlOptions | None = None,
                 serialized: bool = False):
        super().__init__(connection, keyspace, table, policy, max_in_flight, metrics_namespace,
                         rate, dead_letter_prefix, control)
        self._serialized = serialized
        self._max_batch_bytes = max_batch_bytes
        self._batch_mode = BatchMode(batch_mode)
        self._cells = cells

    # ----------------------------------------------------------------- lifecycle

    def setup(self):
        super().setup()
        token_map = self._session.cluster.metadata.token_map
        # Without a token map (metadata off) rows are grouped by partition instead.
        self._replica_sets = (ReplicaSets(token_map, self._keyspace)
                              if token_map is not None else None)
        static = frozenset(column.name for column in self._table_metadata.columns.values()
                           if column.is_static)
        self._inserts = InsertStatements(self._session, self._keyspace, self._table,
                                         self._key_columns, self._clustering_key, self._cells,
                                         self._serialized, static)
        lists = list_columns(self._table_metadata)
        # Serialized rows never carry a non-frozen list written with its writetimes (the
        # launcher decodes those: ``TablePlan.serialized``); a list only the target has is
        # never written.
        self._lists = (ListGuard(self._session, self._keyspace, self._table, lists,
                                 self._key_columns, self._policy)
                       if lists and self._cells.writetime and not self._serialized else None)
        if self._serialized:
            register_user_types(self._session.cluster, self._keyspace)  # dead letters' UDTs

    def start_bundle(self):
        super().start_bundle()
        self._in_flight: InFlight[_Request] = InFlight(self._max_in_flight, self._complete)

    def _write(self, rows: list[Mapping], tally: ItemTally):
        for request in self._requests(rows, self._batch_mode is BatchMode.NONE, tally):
            self._in_flight.make_room()
            self._send(request)
            self._in_flight.add(request)

    def _complete_all(self):
        self._in_flight.drain()

    # ----------------------------------------------------------------- requests

    def _requests(self, rows: list[Mapping], alone: bool, tally: ItemTally) -> list[_Request]:
        """The requests that write ``rows``, grouped as the batch mode says (one per row when
        ``alone``). Rows that cannot be bound, or whose lists cannot be checked, become dead
        letters here."""
        if self._lists is not None:
            checked, unreadable = self._lists.check(rows)
            for row, outcome in unreadable:
                self._failed(row, outcome, tally)
        else:
            checked = [(row, row) for row in rows]
        groups: dict = {}
        for row, writable in checked:
            try:  # a value the column cannot take, or a null key, fails here: that row only
                statements = self._inserts.of(writable)
                if alone:
                    key = len(groups)
                elif self._batch_mode is BatchMode.BUNDLE:
                    key = None
                else:
                    key = self._group_key(statements[0])
            except Exception as error:  # noqa: BLE001 - the row becomes a dead letter
                self._failed(row, retry.Outcome(error=error), tally)
                continue
            guarded = self._lists is not None and self._lists.carries_lists(writable)
            groups.setdefault(key, []).append((statements, row, guarded))
        return [_Request(request_for([s for statements, _, _ in chunk for s in statements]),
                         [row for _, row, _ in chunk], any(g for _, _, g in chunk), tally, size)
                for members in groups.values()
                for chunk, size in within_bytes(members, self._max_batch_bytes)]

    def _group_key(self, statement):
        if self._batch_mode is BatchMode.PARTITION or self._replica_sets is None:
            return statement.routing_key
        return self._replica_sets.of(statement.routing_key)

    def _send(self, request: _Request):
        request.future = send(self._session, request.statement, self._policy.consistency)
        self._progress.watch(request.future)  # the write latency of the progress line

    def _resend(self, request: _Request, consistency: int):
        """A retry of a request: the same statement, unless a row in it writes a list, which
        the guard checks against the target again (the first write may have landed)."""
        self._check_not_stopped()
        statement = request.statement
        if request.guarded:
            checked, unreadable = self._lists.check(request.rows)
            if unreadable:
                raise unreadable[0][1].error
            statement = request_for([s for _, writable in checked
                                     for s in self._inserts.of(writable)])
        statement.consistency_level = consistency
        return self._session.execute(statement)

    def _complete(self, request: _Request, policy: retry.RetryPolicy | None = None):
        """Wait for a request (retrying it if it failed) and account for its rows."""
        outcome = outcome_of(request.future,
                             lambda consistency: self._resend(request, consistency),
                             policy or self._policy, describe=lambda: self._describe(request.rows))
        self._account(outcome)
        if outcome.ok:
            self._written(request.rows, outcome, request.tally, request.size)
        elif isinstance(outcome.error, retry.TableStopped) or self._stopped():
            self._skipped(len(request.rows), request.tally)
        elif len(request.rows) > 1 and not retry.is_table_fatal(outcome.error):
            self._counters["batch_fallbacks"].inc()
            _LOG.warning("batch of %d rows for %s failed (%s: %s); writing its rows one by one",
                         len(request.rows), self._label, type(outcome.error).__name__,
                         outcome.error)
            self._write_one_by_one(request.rows, request.tally,
                                   retried=retry.is_recoverable(outcome.error))
        else:
            for row in request.rows:
                self._failed(row, outcome, request.tally)

    def _write_one_by_one(self, rows, tally: ItemTally, retried: bool):
        """The batch-to-row fallback: each row its own request (lists checked again). After a
        batch that failed its retries (Unavailable, timeouts: the replicas, not the rows), each
        row gets one attempt at the level the batch ended at, not a new round of backoffs: 50
        rows with three backoffs each would take minutes while a cluster cannot take writes."""
        policy = None
        if retried:
            policy = dataclasses.replace(self._policy, retries=0)
        requests = self._requests(rows, True, tally)
        for request in requests:
            self._send(request)
        for request in requests:
            self._complete(request, policy)

    # ----------------------------------------------------------------- results

    def _written(self, rows, outcome: retry.Outcome, tally: ItemTally, size: int = 0):
        if outcome.downgraded:
            self._downgraded([self._inserts.readable(row) for row in rows], outcome.consistency,
                             tally)
        super()._written(len(rows), tally, size=size)

    def _failed(self, row: Mapping, outcome: retry.Outcome, tally: ItemTally):
        row = self._inserts.readable(row)
        self._dead_letter(row, outcome, tally, groups=self._inserts.groups(row))

    def _describe(self, rows) -> str:
        key = self._key_of(self._inserts.readable(rows[0]))
        more = f" and {len(rows) - 1} more rows" if len(rows) > 1 else ""
        return (f"writing to {self._label} (partition {key['partition_key']}, "
                f"clustering {key['clustering']}{more})")


class _WriteFn(beam.DoFn):
    """Writes bundles of rows: a counter table's by reconciliation (``transforms.counters``),
    any other table's by INSERTs (``_WriteRowsFn``). Which one is decided from the target's
    schema when the DoFn starts on its worker."""

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 rows: _WriteRowsFn, counters: _WriteCountersFn):
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._choices = (rows, counters)
        self._writer = None

    def setup(self):
        session = shared_sessions.acquire(self._connection)
        try:
            table = table_metadata(session, self._keyspace, self._table)
        finally:
            shared_sessions.release(self._connection)
        if table is None:
            raise ValueError(f"table {self._keyspace}.{self._table} does not exist on "
                             f"{self._connection.describe()}")
        rows, counters = self._choices
        is_counter = any(column.cql_type == "counter" for column in table.columns.values())
        self._writer = counters if is_counter else rows
        self._writer.setup()

    def start_bundle(self):
        self._writer.start_bundle()

    def process(self, rows):
        return self._writer.process(rows)

    def finish_bundle(self):
        return self._writer.finish_bundle()

    def teardown(self):
        if self._writer is not None:
            self._writer.teardown()


class WriteToCassandra(beam.PTransform):
    """Write dicts (column name -> value) to a Cassandra table.

    A counter table (detected from the target's schema) is written by reconciliation: each
    counter is incremented by the source value minus the target's current value, so reruns do
    not double it (``transforms.counters``); ``batch_mode``, ``cells`` and
    ``max_batch_bytes`` do not apply to it.

    Args:
      connection: the target cluster.
      keyspace, table: where to write (names as stored, not quoted). Each row's keys are the
        columns written (and, as ``cells`` says, their writetimes and TTLs); None values are
        sent as UNSET.
      batch_size: at most this many rows per bundle (and so per batch statement).
      batch_mode: how a bundle's rows are grouped into requests (``BatchMode``).
      policy: retries, write consistency and fallback consistency.
      max_in_flight: requests running at once per DoFn instance.
      metrics_namespace: namespace of the rows_written / rows_failed / write_retries /
        consistency_downgrades / batch_fallbacks (rows_unchanged for counters) counters.
      cells: what the rows carry beside their values (``transforms.cells.CellOptions``): with
        writetimes and TTLs (read by ``ReadFromCassandra(cells=...)``), each cell is written
        with its writetime and remaining TTL.
      max_rows_per_second: a limit on the rows written per second by this transform's writers
        in every worker process together (None: none). With ``control``'s run ledger, the
        processes writing at the moment share it and a process that runs out of work leaves
        its share to the others (``transforms.rate_limit``); without one, each process takes
        ``max_rows_per_second / writing_processes``.
      writing_processes: how many worker processes are expected to write: each starts with
        that share of ``max_rows_per_second`` (and keeps it without a ledger).
      max_batch_bytes: at most this many bytes of values per batch statement (keep it under the
        cluster's batch_size_fail_threshold, 50 KiB by default).
      dead_letter_prefix: write dead letters durably to ``<prefix>.failed_rows.<pid>.jsonl``
        (any Beam file system) before counting them (``transforms.row_writer``).
      control: the run's control of this table (``transforms.ledger.ControlOptions``): an
        error budget, and a stop once the target refuses the table itself.
      serialized: the rows carry their values as the native protocol serializes them
        (``ReadFromCassandra(serialized=True)``), written as they are; a failed row is decoded
        with the target's column types for its dead letter. Not for counter tables or tables
        with non-frozen lists.

    Returns the DoFn's outputs: ``result.failed_rows`` (a JSON-ready dict per row that could not
    be written), ``result.downgraded_rows`` (the keys of rows written at the fallback level)
    and ``result.work_items`` (a record per work item whose rows are all settled, when the rows
    carry ``read.WorkItemEnd``s).
    """

    FAILED_ROWS = RowWriterFn.FAILED_ROWS
    DOWNGRADED_ROWS = RowWriterFn.DOWNGRADED_ROWS
    WORK_ITEMS = RowWriterFn.WORK_ITEMS

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str, *,
                 batch_size: int = 50, batch_mode: BatchMode = BatchMode.REPLICA_SET,
                 policy: retry.RetryPolicy | None = None, max_in_flight: int = 64,
                 metrics_namespace: str | None = None, cells: CellOptions = VALUES_ONLY,
                 max_rows_per_second: float | None = None, writing_processes: int = 1,
                 max_batch_bytes: int = 40 * 1024, dead_letter_prefix: str | None = None,
                 control: ControlOptions | None = None, serialized: bool = False):
        super().__init__()
        self._serialized = serialized
        self._dead_letter_prefix = dead_letter_prefix
        self._control = control
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._batch_size = batch_size
        self._batch_mode = BatchMode(batch_mode)
        self._policy = policy or retry.RetryPolicy()
        self._max_in_flight = max_in_flight
        self._namespace = metrics_namespace or f"{keyspace}.{table}"
        self._cells = cells
        self._rate = (RateLimit(max_rows_per_second, max(1, writing_processes))
                      if max_rows_per_second else None)
        self._max_batch_bytes = max_batch_bytes

    def expand(self, rows):
        common = (self._connection, self._keyspace, self._table, self._policy)
        writer = _WriteFn(
            self._connection, self._keyspace, self._table,
            _WriteRowsFn(*common, self._batch_mode, self._max_in_flight, self._namespace,
                         self._cells, self._rate, self._max_batch_bytes,
                         self._dead_letter_prefix, self._control, self._serialized),
            _WriteCountersFn(*common, self._max_in_flight, self._namespace,
                             self._rate, self._dead_letter_prefix,
                             self._control))
        return write_in_bundles(rows, self._batch_size, "WriteBundles", writer)

    def display_data(self):
        policy = self._policy
        items = {
            "hosts": self._connection.describe(),
            "table": f"{self._keyspace}.{self._table}",
            "batch_size": self._batch_size,
            "batch_mode": self._batch_mode.value,
            "max_batch_bytes": self._max_batch_bytes,
            "max_in_flight": self._max_in_flight,
            "consistency": retry.consistency_name(policy.consistency),
            "fallback_consistency": (retry.consistency_name(policy.fallback_consistency)
                                     if policy.fallback_consistency is not None else None),
            "retries": policy.retries,
            "cells": self._cells.describe(),
            "max_rows_per_second": self._rate.rows_per_second if self._rate else None,
            "writing_processes": self._rate.processes if self._rate else None,
            "serialized": self._serialized or None,
        }
        return {name: value for name, value in items.items() if value is not None}
