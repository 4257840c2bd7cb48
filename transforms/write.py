"""WriteToCassandra: write a PCollection of row dicts to a table, with retries, consistency
downgrade, batch fallback and a dead-letter output, never stopping the pipeline for a bad row.

Shape: rows -> ``BatchElements`` (bundles of at most ``batch_size`` rows, fused, no shuffle) ->
a DoFn that turns each bundle into statements and keeps up to ``max_in_flight`` of them running
asynchronously, so the network and the cluster stay busy while Python prepares the next ones.

Batching (``BatchMode``):
  * REPLICA_SET (default): rows whose partitions have the same replicas share an UNLOGGED batch
    (dsbulk's idea): fewer requests, and each batch still lands on nodes that own all of it.
    Measured here three times as fast as PARTITION on narrow rows (BENCHMARKS.md).
  * PARTITION: rows of one partition share an UNLOGGED batch; rows of different partitions are
    separate requests, routed token-aware and run concurrently.
  * BUNDLE: one UNLOGGED batch per bundle, whatever it spans (the old script's behaviour).
  * NONE: every row is its own request.
No batch carries more than ``max_batch_bytes`` of values (Cassandra refuses multi-partition
batches over its batch_size_fail_threshold). The consistency level is set on the statement
actually sent (on a batch, the levels of the
statements inside it are ignored by Cassandra).

Failure handling, in order: a recoverable error is retried with backoff, and with a downgrade
from the write level to the fallback level on Unavailable or a timeout (see ``transforms.retry``);
a batch that still fails is written again row by row; a row that still fails goes to the
``FAILED_ROWS`` output with its key, error and full row, and to the log. Every row written at the
fallback level goes to the ``DOWNGRADED_ROWS`` output, to be repaired later.

Writes are retried, so they must be idempotent: INSERTs of whole rows are. Nulls are written as
UNSET, so a copy creates no tombstones.
"""

from __future__ import annotations

import bisect
import collections
import enum
import logging
from collections.abc import Iterable, Mapping

import apache_beam as beam
from cassandra.metadata import Murmur3Token
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from transforms import retry
from transforms.binding import Binder
from transforms.cells import RowLayout, cell_groups, writetime_key
from transforms.connection import CassandraConnection, finished
from transforms.cql import insert_statement, quote, select_statement
from transforms.row_writer import RowWriterFn, write_in_bundles

__all__ = ["BatchMode", "WriteToCassandra"]

_LOG = logging.getLogger(__name__)


class BatchMode(str, enum.Enum):
    PARTITION = "PARTITION"
    REPLICA_SET = "REPLICA_SET"
    BUNDLE = "BUNDLE"
    NONE = "NONE"


class _Request:
    """A statement on its way, with the rows it carries."""

    __slots__ = ("statement", "rows", "future")

    def __init__(self, statement, rows, future=None):
        self.statement = statement
        self.rows = rows
        self.future = future


class _ReplicaSets:
    """The replicas of a routing key, as a hashable set to group rows by.

    With Murmur3 (Cassandra's default partitioner) the ring's tokens are kept as plain integers
    with the replica set of each, so a lookup is one hash and one C bisect; the driver's own
    lookup bisects Token objects compared in Python (measured 2.0 against 0.5 µs a row). Other
    partitioners use the driver's lookup. Like the driver's token map, it is a snapshot: after
    a topology change a batch may span replica sets, which costs speed, never correctness."""

    def __init__(self, token_map, keyspace: str):
        self._token_map = token_map
        self._keyspace = keyspace
        self._tokens: list[int] = []
        if token_map is not None and token_map.token_class is Murmur3Token and token_map.ring:
            self._tokens = [token.value for token in token_map.ring]
            self._replicas = [frozenset(token_map.get_replicas(keyspace, token))
                              for token in token_map.ring]

    def of(self, routing_key: bytes) -> frozenset:
        if not self._tokens:
            token = self._token_map.token_class.from_key(routing_key)
            return frozenset(self._token_map.get_replicas(self._keyspace, token))
        position = bisect.bisect_left(self._tokens, Murmur3Token.hash_fn(routing_key))
        return self._replicas[position if position < len(self._tokens) else 0]


class _WriteRowsFn(RowWriterFn):
    COUNTERS = (*RowWriterFn.COUNTERS, "batch_fallbacks")

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 policy: retry.RetryPolicy, batch_mode: BatchMode, max_in_flight: int,
                 metrics_namespace: str, preserve_writetime: bool = False,
                 preserve_ttl: bool = False, max_rows_per_second: float | None = None,
                 max_batch_bytes: int = 40 * 1024):
        super().__init__(connection, keyspace, table, policy, max_in_flight, metrics_namespace,
                         max_rows_per_second)
        self._max_batch_bytes = max_batch_bytes
        self._batch_mode = BatchMode(batch_mode)
        self._preserve_writetime = preserve_writetime
        self._preserve_ttl = preserve_ttl
        self._keep_cell_metadata = preserve_writetime or preserve_ttl

    # ----------------------------------------------------------------- lifecycle

    def setup(self):
        super().setup()
        token_map = self._session.cluster.metadata.token_map
        # Without a token map (metadata off) rows are grouped by partition instead.
        self._replica_sets = (_ReplicaSets(token_map, self._keyspace)
                              if token_map is not None else None)
        self._list_columns = tuple(name for name, column in self._table_metadata.columns.items()
                                   if column.cql_type.startswith("list<"))
        self._list_writetimes = None
        if self._preserve_writetime and self._list_columns:
            self._list_writetimes = self._session.prepare(select_statement(
                self._keyspace, self._table,
                [f"maxwritetime({quote(name)})" for name in self._list_columns],
                " AND ".join(f"{quote(name)} = ?" for name in self._key_columns), quoted=True))
        self._prepared: dict[tuple, Binder] = {}
        self._layouts: dict[tuple[str, ...], RowLayout] = {}

    def start_bundle(self):
        super().start_bundle()
        self._in_flight: collections.deque[_Request] = collections.deque()

    def process(self, rows: list[Mapping]):
        self._limit(len(rows))
        for statement, group in self._requests(rows):
            self._submit(statement, group)
        yield from self._drain_outputs()

    def _complete_all(self):
        while self._in_flight:
            self._complete(self._in_flight.popleft())

    # ----------------------------------------------------------------- statements

    def _prepared_insert(self, columns: tuple[str, ...], timestamp: bool, ttl: bool) -> Binder:
        key = (columns, timestamp, ttl)
        binder = self._prepared.get(key)
        if binder is None:
            binder = self._prepared[key] = Binder(self._session.prepare(insert_statement(
                self._keyspace, self._table, columns, timestamp=timestamp, ttl=ttl)))
        return binder

    def _row_statements(self, row: Mapping) -> list:
        """The bound INSERTs that write one row (more than one when its cells differ in
        writetime or TTL)."""
        if not self._keep_cell_metadata:
            columns = tuple(row)
            if any(row.get(name) is None for name in self._clustering_key):
                # A partition with static cells only: no clustering key, so no row to insert.
                row = {name: value for name, value in row.items() if value is not None}
                columns = tuple(row)
            return [self._prepared_insert(columns, False, False).bind(
                [UNSET_VALUE if value is None else value for value in row.values()])]
        keys = tuple(row)
        layout = self._layouts.get(keys)
        if layout is None:
            layout = self._layouts[keys] = RowLayout(
                keys, self._key_columns, keep_writetime=self._preserve_writetime,
                keep_ttl=self._preserve_ttl)
        uniform = layout.uniform(row)
        if uniform is not None:
            values, writetime, ttl = uniform
            values += [value for value in (writetime, ttl) if value is not None]
            return [self._prepared_insert(layout.columns, writetime is not None,
                                          ttl is not None).bind(values)]
        statements = []
        for cells, writetime, ttl in cell_groups(row, self._key_columns,
                                                 keep_writetime=self._preserve_writetime,
                                                 keep_ttl=self._preserve_ttl):
            prepared = self._prepared_insert(tuple(cells), writetime is not None,
                                             ttl is not None)
            values = list(cells.values())
            values += [value for value in (writetime, ttl) if value is not None]
            statements.append(prepared.bind(values))
        return statements

    def _without_copied_lists(self, rows: list[Mapping]) -> list[Mapping]:
        """Rows minus the non-frozen list cells that the target already holds at the same
        writetime or a newer one.

        Cassandra gives each list element a new cell id at every write, so writing a list again
        at its original writetime would append its elements a second time (the tombstone that
        an INSERT puts before a collection is one microsecond older than the write). Sets, maps
        and everything else are overwritten in place and need no such check."""
        candidates = [(index, row) for index, row in enumerate(rows)
                      if any(row.get(name) for name in self._list_columns)
                      and all(row.get(name) is not None for name in self._key_columns)]
        if not candidates:
            return rows
        futures = [(index, self._session.execute_async(self._list_writetimes.bind(
            [row[name] for name in self._key_columns]))) for index, row in candidates]
        rows = list(rows)
        for index, future in futures:
            try:
                existing = future.result().one()
            except Exception as error:  # noqa: BLE001 - the write itself will show the problem
                _LOG.warning("could not read the list writetimes of a row of %s: %s",
                             self._label, error)
                continue
            if not existing:
                continue
            row = dict(rows[index])
            for name, target_writetime in zip(self._list_columns, existing.values(),
                                              strict=True):
                source_writetime = row.get(writetime_key(name))
                if isinstance(source_writetime, list):
                    source_writetime = max((w for w in source_writetime if w is not None),
                                           default=None)
                if (target_writetime is not None and source_writetime is not None
                        and target_writetime >= source_writetime):
                    row[name] = None
            rows[index] = row
        return rows

    def _requests(self, rows: Iterable[Mapping]):
        """(statement, rows) pairs for one bundle, grouped as the batch mode says."""
        if self._list_writetimes is not None:
            rows = self._without_copied_lists(list(rows))
        groups: dict = {}
        for row in rows:
            try:  # a value the column cannot take, or a null key, fails here: that row only
                statements = self._row_statements(row)
                if self._batch_mode is BatchMode.NONE:
                    key = len(groups)
                elif self._batch_mode is BatchMode.BUNDLE:
                    key = None
                else:
                    key = self._group_key(statements[0])
            except Exception as error:  # noqa: BLE001 - the row becomes a dead letter
                self._failed(row, retry.Outcome(error=error))
                continue
            groups.setdefault(key, []).append((statements, row))
        return [self._statement_for(chunk) for members in groups.values()
                for chunk in self._within_batch_bytes(members)]

    def _within_batch_bytes(self, members):
        """Cut a group so that no batch carries more than ``max_batch_bytes`` of values:
        Cassandra refuses a multi-partition batch over batch_size_fail_threshold (50 KiB by
        default), and the fallback to single rows would cost far more than smaller batches."""
        chunk, size = [], 0
        for statements, row in members:
            row_size = sum(len(value) for statement in statements for value in statement.values
                           if isinstance(value, (bytes, bytearray)))
            if chunk and size + row_size > self._max_batch_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append((statements, row))
            size += row_size
        if chunk:
            yield chunk

    def _group_key(self, statement):
        if self._batch_mode is BatchMode.PARTITION or self._replica_sets is None:
            return statement.routing_key
        return self._replica_sets.of(statement.routing_key)

    @staticmethod
    def _statement_for(members):
        """One request for some rows: a lone statement, or an UNLOGGED batch of them all."""
        statements = [statement for row_statements, _ in members for statement in row_statements]
        rows = [row for _, row in members]
        if len(statements) == 1:
            return statements[0], rows
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for statement in statements:
            batch.add(statement)
        return batch, rows

    # ----------------------------------------------------------------- requests

    def _submit(self, statement, rows):
        while len(self._in_flight) >= self._max_in_flight:
            self._complete(self._in_flight.popleft())
        statement.consistency_level = self._policy.consistency
        self._in_flight.append(_Request(statement, rows, self._session.execute_async(statement)))

    def _execute(self, statement, consistency):
        statement.consistency_level = consistency
        return self._session.execute(statement)

    def _outcome(self, request: _Request) -> retry.Outcome:
        """Wait for a request; retry it synchronously if it failed."""
        try:
            finished(request.future)
            return retry.Outcome(attempts=1, consistency=self._policy.consistency)
        except Exception as error:  # noqa: BLE001 - call_with_retries classifies it
            first_error = error
        outcome = retry.call_with_retries(
            lambda consistency: self._execute(request.statement, consistency), self._policy,
            first_error=first_error, describe=lambda: self._describe(request.rows))
        self._counters["write_retries"].inc(outcome.retries)
        return outcome

    def _complete(self, request: _Request):
        outcome = self._outcome(request)
        if outcome.ok:
            self._written(request.rows, outcome)
        elif len(request.rows) > 1:
            self._counters["batch_fallbacks"].inc()
            _LOG.warning("batch of %d rows for %s failed (%s: %s); writing its rows one by one",
                         len(request.rows), self._label, type(outcome.error).__name__,
                         outcome.error)
            self._write_one_by_one(request.rows)
        else:
            self._failed(request.rows[0], outcome)

    def _write_one_by_one(self, rows):
        requests = []
        for row in rows:
            try:
                statement, _ = self._statement_for([(self._row_statements(row), row)])
            except Exception as error:  # noqa: BLE001 - the row becomes a dead letter
                self._failed(row, retry.Outcome(error=error))
                continue
            statement.consistency_level = self._policy.consistency
            requests.append(_Request(statement, [row], self._session.execute_async(statement)))
        for request in requests:
            outcome = self._outcome(request)
            if outcome.ok:
                self._written(request.rows, outcome)
            else:
                self._failed(request.rows[0], outcome)

    # ----------------------------------------------------------------- results

    def _written(self, rows, outcome: retry.Outcome):
        super()._written(len(rows))
        if outcome.downgraded:
            self._downgraded(rows, outcome.consistency)

    def _failed(self, row: Mapping, outcome: retry.Outcome):
        groups = (cell_groups(row, self._key_columns, keep_writetime=self._preserve_writetime,
                              keep_ttl=self._preserve_ttl)
                  if self._keep_cell_metadata else None)
        self._dead_letter(row, outcome, groups=groups)

    def _describe(self, rows) -> str:
        key = self._key_of(rows[0])
        more = f" and {len(rows) - 1} more rows" if len(rows) > 1 else ""
        return (f"writing to {self._label} (partition {key['partition_key']}, "
                f"clustering {key['clustering']}{more})")


class WriteToCassandra(beam.PTransform):
    """Write dicts (column name -> value) to a Cassandra table.

    Args:
      connection: the target cluster.
      keyspace, table: where to write (names as stored, not quoted). Each row's keys are the
        columns written; None values are sent as UNSET.
      batch_size: at most this many rows per bundle (and so per batch statement).
      batch_mode: how a bundle's rows are grouped into requests (``BatchMode``).
      policy: retries, write consistency and fallback consistency.
      max_in_flight: requests running at once per DoFn instance.
      metrics_namespace: namespace of the rows_written / rows_failed / write_retries /
        consistency_downgrades / batch_fallbacks counters.
      preserve_writetime, preserve_ttl: write each cell with the writetime and remaining TTL
        read with it (``ReadFromCassandra(cell_metadata=True)``; see ``transforms.cells``).
      max_rows_per_second: a limit shared by every writer of the worker process (None: none).
      max_batch_bytes: at most this many bytes of values per batch statement (keep it under the
        cluster's batch_size_fail_threshold, 50 KiB by default).

    Returns the DoFn's outputs: ``result.failed_rows`` (a JSON-ready dict per row that could not
    be written) and ``result.downgraded_rows`` (the keys of rows written at the fallback level).
    """

    FAILED_ROWS = _WriteRowsFn.FAILED_ROWS
    DOWNGRADED_ROWS = _WriteRowsFn.DOWNGRADED_ROWS

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str, *,
                 batch_size: int = 50, batch_mode: BatchMode = BatchMode.REPLICA_SET,
                 policy: retry.RetryPolicy | None = None, max_in_flight: int = 64,
                 metrics_namespace: str | None = None, preserve_writetime: bool = False,
                 preserve_ttl: bool = False, max_rows_per_second: float | None = None,
                 max_batch_bytes: int = 40 * 1024):
        super().__init__()
        self._preserve = (preserve_writetime, preserve_ttl)
        self._max_batch_bytes = max_batch_bytes
        self._max_rows_per_second = max_rows_per_second
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._batch_size = batch_size
        self._batch_mode = BatchMode(batch_mode)
        self._policy = policy or retry.RetryPolicy()
        self._max_in_flight = max_in_flight
        self._namespace = metrics_namespace or f"{keyspace}.{table}"

    def expand(self, rows):
        return write_in_bundles(rows, self._batch_size, "WriteBundles", _WriteRowsFn(
            self._connection, self._keyspace, self._table, self._policy, self._batch_mode,
            self._max_in_flight, self._namespace, *self._preserve, self._max_rows_per_second,
            self._max_batch_bytes))
