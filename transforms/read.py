"""ReadFromCassandra: read a table as a PCollection of row dicts, one token range at a time.

Shape: one element per table -> a DoFn that splits the token ring into work items (on a worker,
from the cluster's own token map) -> Reshuffle, so the work items spread across workers -> a
DoFn that pages through each range with the configured fetch size and emits rows.

Reads follow ring ownership: each work item lies on one replica set and is sent to one of its
replicas. Every page is retried on a recoverable error (from the paging state it failed at,
so no row is read twice); a range that still fails is never dropped silently: it goes to the
``FAILED_RANGES`` output with the error, and the rows of the pages read before it stay emitted.

A page that could only be read at the fallback consistency (``transforms.retry``: QUORUM ->
ONE after Unavailable or a timeout) may miss rows that a lagging replica has not received yet.
Such reads are not silent either: each work item with a downgraded page goes to the
``DOWNGRADED_RANGES`` output and is counted as ``ranges_downgraded``, so the range can be
validated or copied again once the cluster is healthy.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from cassandra import cqltypes
from cassandra.protocol import ProtocolHandler, ResultMessage, _ProtocolHandler
from cassandra.util import SortedSet

from transforms import cells, retry, token_ranges, versions
from transforms.cells import VALUES_ONLY, CellOptions
from transforms.connection import CassandraConnection, shared_sessions, table_metadata
from transforms.cql import quote, select_statement
from transforms.ledger import ControlOptions, item_id_of_partition, item_id_of_range
from transforms.requests import outcome_of, send
from transforms.values import forget_dropped_user_types, register_user_types

__all__ = ["PartitionKey", "ReadFromCassandra", "ReadWorkItem", "WorkItemEnd", "work_items_of"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionKey:
    """One partition to read, by its partition key values in key order."""

    values: tuple


@dataclass(frozen=True)
class ReadWorkItem:
    """A token range (or one partition) of a table, the unit of parallel reading. ``item_id``
    names it in a run ledger (``transforms.ledger``)."""

    token_range: token_ranges.TokenRange | None = None
    partition: PartitionKey | None = None
    item_id: str | None = None

    def describe(self) -> str:
        if self.partition is not None:
            return f"partition {self.partition.values!r}"
        return f"token range ({self.token_range.start}, {self.token_range.end}]"


@dataclass(frozen=True)
class WorkItemEnd:
    """Follows the last row of a work item among the rows (``ReadFromCassandra(item_ends=True)``):
    what was read of it, and whether its read failed. ``MapColumns`` passes it on (with the
    rows it filtered out) and ``WriteToCassandra`` turns it into a record of the item once all
    its rows are settled.

    It relies on order: the rows of an item, then its end, all in one bundle. The reader emits
    them so, and read, bundle and write are fused; a shuffle between them would break that,
    and the writer then leaves the item pending (its rows do not add up) rather than record
    it done."""

    item_id: str
    rows_read: int
    read_failed: bool
    started: float
    rows_filtered: int = 0
    # What a validation found in the item, (kind, rows) pairs: recorded in the ledger with it.
    counts: tuple = ()


def work_items_of(metadata, keyspace: str, splits: int,
                  partitions: tuple[tuple, ...] | None) -> list[ReadWorkItem]:
    """The work items of a table: the ring split along ownership (``splits`` about how many),
    or one per listed partition. Each has an ``item_id``."""
    if partitions is not None:
        return [ReadWorkItem(partition=PartitionKey(tuple(values)),
                             item_id=item_id_of_partition(index, tuple(values)))
                for index, values in enumerate(partitions)]
    lowest, highest = token_ranges.token_space(metadata.partitioner)
    token_map = metadata.token_map
    ring = [token.value for token in token_map.ring] if token_map else []
    items = []
    for start, end in token_ranges.split_ring(ring, splits, lowest, highest):
        replicas = ()
        if token_map is not None:
            hosts = token_map.get_replicas(keyspace, token_map.token_class(end))
            replicas = tuple(str(host.endpoint.address) for host in hosts)
        items.append(ReadWorkItem(token_range=token_ranges.TokenRange(start, end, replicas),
                                  item_id=item_id_of_range(start, end)))
    return items


class _GenerateWorkItemsFn(beam.DoFn):
    """Table name in, work items out: the ring split along ownership, or the listed partitions."""

    def __init__(self, connection: CassandraConnection, keyspace: str, splits: int,
                 partitions: tuple[tuple, ...] | None):
        self._connection = connection
        self._keyspace = keyspace
        self._splits = splits
        self._partitions = partitions

    def setup(self):
        self._session = shared_sessions.acquire(self._connection)

    def teardown(self):
        shared_sessions.release(self._connection)

    def process(self, table: str):
        yield from work_items_of(self._session.cluster.metadata, self._keyspace, self._splits,
                                 self._partitions)


class _ReadWorkItemFn(beam.DoFn):
    """Pages through one work item and emits each row as a dict of column name to value."""

    FAILED_RANGES = "failed_ranges"
    DOWNGRADED_RANGES = "downgraded_ranges"

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 columns: tuple[str, ...] | None, fetch_size: int, policy: retry.RetryPolicy,
                 metrics_namespace: str, cells: CellOptions = VALUES_ONLY,
                 where: str | None = None, item_ends: bool = False,
                 control: ControlOptions | None = None, page_bytes: int | None = None,
                 serialized: bool = False):
        self._page_bytes = page_bytes
        self._serialized = serialized
        self._item_ends = item_ends
        self._control_options = control
        self._cells = cells
        self._where = where
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._columns = columns
        self._fetch_size = fetch_size
        self._policy = policy
        self._namespace = metrics_namespace

    def setup(self):
        self._shared = shared_sessions.acquire(self._connection)
        self._queries = prepare_reads(self._shared, self._connection, self._keyspace,
                                      self._table, self._columns, self._fetch_size, self._cells,
                                      self._where, page_bytes=self._page_bytes,
                                      serialized=self._serialized)
        self._rows_read = Metrics.counter(self._namespace, "rows_read")
        self._read_retries = Metrics.counter(self._namespace, "read_retries")
        self._ranges_failed = Metrics.counter(self._namespace, "ranges_failed")
        self._ranges_downgraded = Metrics.counter(self._namespace, "ranges_downgraded")
        self._items_skipped = Metrics.counter(self._namespace, "work_items_skipped")
        self._outage_ms = Metrics.counter(self._namespace, "outage_ms")
        self._outage_clock = retry.outage_clock(self._namespace)
        self._control = (self._control_options.control()
                         if self._control_options is not None else None)
        self._activity = Metrics.distribution(self._namespace, "activity_epoch_ms")

    def teardown(self):
        self._queries.close()
        shared_sessions.release(self._connection)

    def process(self, item: ReadWorkItem):
        yield from self._read(item)

    def _read(self, item: ReadWorkItem):
        started = time.time()
        self._activity.update(int(started * 1000))
        if self._stopped():
            self._items_skipped.inc()  # left pending in the ledger, for a resume
            return
        rows_so_far = downgraded_pages = 0
        for outcome in self._queries.pages(item, self._policy, describe=lambda: (
                f"reading {self._keyspace}.{self._table} {item.describe()}")):
            self._read_retries.inc(outcome.retries)
            self._outage_ms.inc(self._outage_clock.new_milliseconds(outcome))
            downgraded_pages += outcome.downgraded
            last = not outcome.ok or outcome.result.paging_state is None
            if last and downgraded_pages:
                self._ranges_downgraded.inc()
                _LOG.warning("%s.%s: %d pages of %s were read at %s: a replica that missed "
                             "writes may have left rows out", self._keyspace, self._table,
                             downgraded_pages, item.describe(),
                             retry.consistency_name(self._policy.fallback_consistency))
                yield beam.pvalue.TaggedOutput(self.DOWNGRADED_RANGES, {
                    **self._item_record(item), "pages_downgraded": downgraded_pages,
                    "consistency": retry.consistency_name(self._policy.fallback_consistency)})
            if not outcome.ok:
                self._ranges_failed.inc()
                _LOG.error("reading %s.%s failed for %s after %d rows of it: %s: %s",
                           self._keyspace, self._table, item.describe(), rows_so_far,
                           type(outcome.error).__name__, outcome.error, exc_info=outcome.error)
                yield beam.pvalue.TaggedOutput(self.FAILED_RANGES, {
                    **self._item_record(item),
                    "rows_read_before_failure": rows_so_far,
                    "error": type(outcome.error).__name__,
                    "message": str(outcome.error),
                })
                if self._item_ends and item.item_id is not None:
                    yield WorkItemEnd(item.item_id, rows_so_far, True, started)
                return
            rows = outcome.result.current_rows
            self._rows_read.inc(len(rows))
            if self._control is not None:
                self._control.rows_read(len(rows))
            rows_so_far += len(rows)
            yield from rows
            if last:
                if self._item_ends and item.item_id is not None:
                    yield WorkItemEnd(item.item_id, rows_so_far, False, started)
                return
            if self._stopped():
                return  # no end: the item stays pending in the ledger

    def _stopped(self) -> bool:
        return self._control is not None and self._control.stopped is not None

    def _item_record(self, item: ReadWorkItem) -> dict:
        return {
            "table": f"{self._keyspace}.{self._table}",
            "work_item": item.describe(),
            "token_range": ([item.token_range.start, item.token_range.end]
                            if item.token_range else None),
            "partition": list(map(repr, item.partition.values)) if item.partition else None,
        }

TOKEN_KEY = "token()"


class TableQueries:
    """The prepared reads of one table (a token range, one partition) and how to page through
    a work item with them: what ``ReadFromCassandra`` and the validator share.

    ``token``: also select each row's partition token, as ``row[TOKEN_KEY]``."""

    def __init__(self, session, keyspace: str, table: str, columns: tuple[str, ...] | None,
                 fetch_size: int, cells: CellOptions = VALUES_ONLY, where: str | None = None,
                 token: bool = False, describe_cluster: str = "the cluster",
                 page_bytes: int | None = None, serialized: bool = False):
        self.session = session
        self.serialized = serialized
        self._fetch_size = fetch_size
        # With a WHERE the node may scan far more rows than a page returns: pages stay at
        # fetch_size rows, so a page's scan stays as short as the settings say.
        self._page_size = PageSize(fetch_size, page_bytes) if page_bytes and not where else None
        self._own_session = None
        try:
            self._prepare(keyspace, table, columns, fetch_size, cells, where, token,
                          describe_cluster)
        except BaseException:
            self.close()  # the session of its own, if it made one
            raise

    @property
    def page_rows(self) -> int:
        """Rows the next page asks for: fetch_size, or what ``PageSize`` learnt."""
        return self._page_size.rows if self._page_size is not None else self._fetch_size

    def _prepare(self, keyspace, table, columns, fetch_size, cells, where, token,
                 describe_cluster) -> None:
        session, serialized = self.session, self.serialized
        metadata = session.cluster.metadata
        table_meta = table_metadata(session, keyspace, table)
        if table_meta is None:
            raise ValueError(f"table {keyspace}.{table} does not exist on {describe_cluster}")
        register_user_types(session.cluster, keyspace)
        partition_key = [quote(column.name) for column in table_meta.partition_key]
        columns = columns or tuple(table_meta.columns)
        selectors = [quote(name) for name in columns]
        if token:
            selectors.append(f"token({', '.join(partition_key)}) AS {quote(TOKEN_KEY)}")
        if cells.any:
            metadata_selectors, per_element = _cell_metadata_selectors(
                table_meta, columns, set(metadata.keyspaces[keyspace].user_types), cells,
                versions.oldest_release(metadata))
            selectors += metadata_selectors
        else:
            per_element = False
        # A reader that needs another decoder has a session of its own, so other readers keep
        # the fast one: serialized values come as bytes; per-element TTLs of a collection hold
        # nulls for elements without TTL, which the driver's Cython decoder rejects, so such
        # a reader uses the pure-Python decoder.
        handler = (SerializedProtocolHandler if serialized
                   else _ProtocolHandler if per_element else None)
        if handler is not None:
            forget_dropped_user_types(session.cluster)
            self._own_session = self.session = session.cluster.connect()
            self.session.client_protocol_handler = handler
        extra = f" AND {where}" if where else ""
        suffix = " ALLOW FILTERING" if where else ""
        self.range_query = self.session.prepare(select_statement(
            keyspace, table, selectors,
            f"token({', '.join(partition_key)}) > ? AND "
            f"token({', '.join(partition_key)}) <= ?{extra}", quoted=True) + suffix)
        self.partition_query = self.session.prepare(select_statement(
            keyspace, table, selectors,
            " AND ".join(f"{name} = ?" for name in partition_key) + extra,
            quoted=True) + suffix)
        self.partition_key = tuple(column.name for column in table_meta.partition_key)
        self.key_columns = self.partition_key + tuple(
            column.name for column in table_meta.clustering_key)
        self.row_query = self.session.prepare(select_statement(
            keyspace, table, selectors,
            " AND ".join(f"{quote(name)} = ?" for name in self.key_columns), quoted=True))
        for statement in (self.range_query, self.partition_query):
            statement.fetch_size = fetch_size
            if serialized:  # for a driver that has the server leave the metadata out
                statement.result_metadata = [(*column[:3], cqltypes.BytesType)
                                             for column in statement.result_metadata or ()]

    def close(self) -> None:
        if self._own_session is not None:
            self._own_session.shutdown()

    def _replica_host(self, item: ReadWorkItem):
        """A live replica of the range to send its pages to; None lets the driver choose."""
        if item.token_range is None or not item.token_range.replicas:
            return None
        metadata = self.session.cluster.metadata
        hosts = [metadata.get_host(address) for address in item.token_range.replicas]
        hosts = [host for host in hosts if host is not None and host.is_up]
        return random.choice(hosts) if hosts else None

    def pages(self, item: ReadWorkItem, policy: retry.RetryPolicy, describe,
              replicas: bool = True):
        """The outcome of each page of ``item``, in order, each retried as ``policy`` says (from
        its paging state, so no row is read twice); the next page is fetched while the caller
        uses this one. Ends after the last page or a failed outcome. ``replicas``: send the
        pages to a replica of the range (its token range's replicas are of this cluster)."""
        if item.partition is not None:
            statement, parameters = self.partition_query, item.partition.values
        else:
            statement = self.range_query
            parameters = (item.token_range.start, item.token_range.end)
        host = self._replica_host(item) if replicas else None

        def fetch_async(paging_state, host, consistency):
            bound = statement.bind(parameters)
            bound.fetch_size = self.page_rows
            return send(self.session, bound, consistency, paging_state=paging_state, host=host)

        paging_state = None
        future = fetch_async(None, host, policy.consistency)
        while True:
            def fetch(consistency, paging_state=paging_state):
                # The retry lets the driver pick a replica: the pinned one may be the problem.
                return fetch_async(paging_state, None, consistency).result()

            outcome = outcome_of(future, fetch, policy, describe=describe)
            if outcome.ok and self.serialized and not _serialized(outcome.result):
                outcome = retry.Outcome(error=RuntimeError(
                    "the driver decoded a page meant to hold its values as bytes "
                    "(SerializedProtocolHandler was not used); its rows are not written"))
            if outcome.ok and self._page_size is not None:
                self._page_size.learn(outcome.result.current_rows)
            if not outcome.ok or outcome.result.paging_state is None:
                yield outcome
                return
            paging_state = outcome.result.paging_state
            future = fetch_async(paging_state, host, policy.consistency)
            yield outcome


def prepare_reads(session, connection: CassandraConnection, keyspace: str, table: str,
                  columns: tuple[str, ...] | None, fetch_size: int,
                  cells: CellOptions = VALUES_ONLY, where: str | None = None,
                  token: bool = False, page_bytes: int | None = None,
                  serialized: bool = False) -> TableQueries:
    return TableQueries(session, keyspace, table, columns, fetch_size, cells, where, token,
                        describe_cluster=connection.describe(), page_bytes=page_bytes,
                        serialized=serialized)


class _BytesResultMessage(ProtocolHandler.message_types_by_opcode[ResultMessage.opcode]):
    """The driver's (Cython) result message, with every column of the rows decoded as a blob:
    each value as the native protocol carries it (bytes; None for null)."""

    def recv_results_metadata(self, f, user_type_map):
        super().recv_results_metadata(f, user_type_map)
        if self.column_metadata:
            self.column_metadata = [(*column[:3], cqltypes.BytesType)
                                    for column in self.column_metadata]


def _serialized(result) -> bool:
    """Whether a page holds its values as bytes, as a serialized read must (a decoded value
    would be bound as if it were bytes)."""
    return all(kind is cqltypes.BytesType for kind in result.column_types or ())


class SerializedProtocolHandler(ProtocolHandler):
    """A session's protocol handler that hands over rows with serialized values, for a copy
    that writes them back unchanged (``TableQueries(serialized=True)``): no Python object per
    value on the way in, no serialization on the way out."""

    message_types_by_opcode = {**ProtocolHandler.message_types_by_opcode,
                               ResultMessage.opcode: _BytesResultMessage}


class PageSize:
    """Pages of about ``page_bytes`` and at least ``min_rows`` rows (at most ``MAX_ROWS``): a
    page costs a request, a response and a seek on the node whatever its rows, so small rows
    are cheaper in bigger pages, while big rows keep a page's memory bounded. The rows' size
    is learnt from the first page with enough rows to tell (``row_bytes``: the size of the
    values as the protocol carries them, roughly)."""

    MAX_ROWS = 10_000
    SAMPLE = 50

    def __init__(self, min_rows: int, page_bytes: int):
        self.min_rows = min_rows
        self.page_bytes = page_bytes
        self.rows = min_rows
        self._learnt = False

    def learn(self, rows) -> int:
        """The rows the next page should ask for, after a page of ``rows``."""
        if not self._learnt and len(rows) >= min(self.SAMPLE, self.min_rows):
            sample = rows[:self.SAMPLE]
            mean = sum(map(row_bytes, sample)) / len(sample)
            self.rows = max(self.min_rows, min(self.MAX_ROWS, int(self.page_bytes // mean)))
            self._learnt = True
        return self.rows


_FIXED_SIZES = {int: 8, float: 8, bool: 1, uuid.UUID: 16, datetime.datetime: 8,
                datetime.date: 4, decimal.Decimal: 16}


def value_bytes(value) -> int:
    """About how many bytes ``value`` takes in the native protocol (its length prefix too)."""
    if value is None:
        return 4
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        return 4 + len(value)
    size = _FIXED_SIZES.get(kind)
    if size is not None:
        return 4 + size
    if isinstance(value, Mapping):
        return 8 + sum(value_bytes(key) + value_bytes(item) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset, SortedSet)):
        return 8 + sum(map(value_bytes, value))
    return 12


def row_bytes(row: Mapping) -> int:
    return sum(map(value_bytes, row.values()))


def _cell_metadata_selectors(table, columns, user_types: set[str], options: CellOptions,
                             release: tuple[int, ...]) -> tuple[list[str], bool]:
    """``writetime(c)`` and ``ttl(c)`` selectors (as ``options`` asks) for each regular column,
    and whether any reports per element (non-frozen collections and user types, Cassandra 5.0
    and later)."""
    keys = {column.name for column in (*table.partition_key, *table.clustering_key)}
    selectors, per_element = [], False
    for name in columns:
        column = table.columns[name]
        if name in keys or column.cql_type == "counter":
            continue
        if cells.is_multi_cell(column.cql_type, user_types):
            if not versions.reports_element_writetimes(release):
                continue  # older servers cannot tell: see transforms.cells
            per_element = per_element or options.ttl  # element TTLs can be null
        for function, alias, wanted in (
                ("writetime", cells.writetime_key(name), options.writetime),
                ("ttl", cells.ttl_key(name), options.ttl)):
            if wanted:
                selectors.append(f"{function}({quote(name)}) AS {quote(alias)}")
    return selectors, per_element


class ReadFromCassandra(beam.PTransform):
    """Read a Cassandra table as a PCollection of dicts (column name -> driver value).

    Args:
      connection: the source cluster.
      keyspace, table: what to read (names as stored, not quoted).
      columns: the columns to select; all columns of the table by default.
      splits: about how many token ranges to cut the ring into; more ranges balance workers
        better, each costs one query more.
      fetch_size: rows per page (the fewest, with ``page_bytes``).
      serialized: rows carry each value as the native protocol serializes it (bytes, None
        for null) instead of a Python value: for a writer that writes them back unchanged
        (``WriteToCassandra(serialized=True)``), to a table whose columns have the same types.
      page_bytes: size pages to about this many bytes of values, from the rows' size (learnt
        from a first page), never fewer rows than ``fetch_size`` (``PageSize``); None: pages of
        exactly ``fetch_size`` rows.
      policy: retries and consistency of the reads (its ``consistency`` is the read level).
      partitions: read only these partitions (tuples of partition key values) instead of the ring.
      metrics_namespace: namespace of the rows_read / read_retries / ranges_failed /
        ranges_downgraded counters.
      cells: what to read beside each regular column's value (``CellOptions``): its writetime
        and/or remaining TTL, as the keys ``writetime(c)`` and ``ttl(c)`` of each row (see
        ``transforms.cells``).
      where: an extra CQL condition on the rows to read (ALLOW FILTERING is added).
      work_items: read these work items (``work_items_of``, or the pending ones of a ledger)
        instead of splitting the ring or listing ``partitions`` on a worker.
      item_ends: follow the last row of each work item with a ``WorkItemEnd``, for a writer
        that records finished items (``transforms.ledger``).
      control: the run's control of this table (``transforms.ledger.ControlOptions``): once
        the table is stopped, no further work item is read.

    The result is a ``beam.pvalue.DoOutputsTuple``-like object: ``result.rows`` holds the rows,
    ``result.failed_ranges`` a dict per work item that could not be read, and
    ``result.downgraded_ranges`` a dict per work item with pages read at the fallback level.
    """

    FAILED_RANGES = _ReadWorkItemFn.FAILED_RANGES
    DOWNGRADED_RANGES = _ReadWorkItemFn.DOWNGRADED_RANGES

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str, *,
                 columns: tuple[str, ...] | None = None, splits: int = 256,
                 fetch_size: int = 100, policy: retry.RetryPolicy | None = None,
                 partitions: tuple[tuple[Any, ...], ...] | None = None,
                 metrics_namespace: str | None = None, cells: CellOptions = VALUES_ONLY,
                 where: str | None = None, work_items: list[ReadWorkItem] | None = None,
                 item_ends: bool = False, control: ControlOptions | None = None,
                 page_bytes: int | None = None, serialized: bool = False):
        super().__init__()
        self._page_bytes = page_bytes
        self._serialized = serialized
        self._work_items = work_items
        self._item_ends = item_ends
        self._control = control
        self._cells = cells
        self._where = where
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._columns = columns
        self._splits = splits
        self._fetch_size = fetch_size
        self._policy = policy or retry.RetryPolicy(consistency=retry.ConsistencyLevel.LOCAL_QUORUM)
        self._partitions = partitions
        self._namespace = metrics_namespace or f"{keyspace}.{table}"

    def expand(self, pbegin):
        if self._work_items is not None:
            items = pbegin | "WorkItems" >> beam.Create(self._work_items)
        else:
            items = (pbegin
                     | "Table" >> beam.Create([self._table])
                     | "SplitTokenRing" >> beam.ParDo(_GenerateWorkItemsFn(
                         self._connection, self._keyspace, self._splits, self._partitions)))
        return (
            items
            | "SpreadWorkItems" >> beam.Reshuffle()
            | "ReadWorkItems" >> beam.ParDo(_ReadWorkItemFn(
                self._connection, self._keyspace, self._table, self._columns, self._fetch_size,
                self._policy, self._namespace, self._cells, self._where, self._item_ends,
                self._control, self._page_bytes, self._serialized)).with_outputs(
                    self.FAILED_RANGES, self.DOWNGRADED_RANGES, main="rows")
        )

    def display_data(self):
        items = {
            "hosts": self._connection.describe(),
            "table": f"{self._keyspace}.{self._table}",
            "columns": ", ".join(self._columns) if self._columns else None,
            "splits": self._splits if self._partitions is None else None,
            "partitions": len(self._partitions) if self._partitions is not None else None,
            "fetch_size": self._fetch_size,
            "page_bytes": self._page_bytes,
            "serialized": self._serialized or None,
            "consistency": retry.consistency_name(self._policy.consistency),
            "fallback_consistency": (retry.consistency_name(self._policy.fallback_consistency)
                                     if self._policy.fallback_consistency is not None else None),
            "cells": self._cells.describe(),
            "where": self._where,
        }
        return {name: value for name, value in items.items() if value is not None}
