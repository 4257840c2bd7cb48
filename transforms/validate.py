"""ValidateTable: read a table on both clusters one token range at a time, merge the two streams
(``transforms.compare``), and count, record and optionally repair what differs.

Shape, like the migration's: work items (token ranges, or listed partitions) -> Reshuffle -> a
DoFn that pages through one item on the source and on the target at the same time (two paged
queries, each with its next page fetched while the current one is compared), so memory holds a
page of each side and the few unmatched rows between two matches, whatever the table's size.

Per row: ``valid``, ``missing`` (not on the target), ``extra`` (only on the target),
``mismatched``, ``newer_on_target`` (the target's cells were written after the source's: a live
write there, not an error) or ``changed_during_validation`` (the source's cells were written
after the validation started: such rows are read again on both sides at the end of their work
item and counted as valid if they now agree, apart otherwise, never as mismatches). Every row
that is not valid gets a record in the table's differences file (JSON Lines, written durably
before the item is counted).

Repair (``auto_correct``): missing and mismatched rows are written again from the source through
``WriteToCassandra``, with their writetimes and TTLs when the migration keeps them, so a newer
write on the target still wins; counters are reconciled there (target read, delta added), never
doubled. Extra rows are deleted only with ``delete_extra``. Corrections are part of their work
item: the item is recorded in the ledger once its corrections are written.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import dead_letters, retry
from transforms.cells import VALUES_ONLY, CellOptions
from transforms.compare import (
    CHANGED_DURING_VALIDATION,
    EXTRA,
    MISMATCHED,
    MISSING,
    NEWER_ON_TARGET,
    OUT_OF_WINDOW,
    OUT_OF_WINDOW_KEY,
    VALID,
    Comparison,
    hashable,
    merge,
)
from transforms.connection import CassandraConnection, shared_sessions
from transforms.cql import quote
from transforms.mapping import map_row, newest_writetime
from transforms.read import TOKEN_KEY, ReadWorkItem, TableQueries, WorkItemEnd
from transforms.requests import InFlight, outcome_of, resend, send

__all__ = ["ValidateTable", "ValidationSide"]

_LOG = logging.getLogger(__name__)

# Rows changed during the validation that are read again at the end of their work item; more
# than this in one item are counted as changed without a second look.
RECHECK_LIMIT = 1000
# Difference records held before they are written out, within one work item.
FLUSH_DIFFERENCES = 5000


@dataclass(frozen=True)
class ValidationSide:
    """One cluster's table, as the validator reads it."""

    connection: CassandraConnection
    keyspace: str
    table: str
    columns: tuple[str, ...]
    policy: retry.RetryPolicy

    @property
    def label(self) -> str:
        return f"{self.keyspace}.{self.table}"


@dataclass(frozen=True)
class ValidationOptions:
    source: ValidationSide
    target: ValidationSide
    comparison: Comparison
    fetch_size: int
    metrics_namespace: str
    differences_prefix: str
    cells: CellOptions = VALUES_ONLY  # what both sides are read with
    kept: CellOptions = VALUES_ONLY  # what corrections carry to the writer
    renames: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    where: str | None = None
    auto_correct: bool = False
    delete_extra: bool = False
    write_policy: retry.RetryPolicy | None = None
    records: bool = False  # emit a record of each work item (for the ledger)
    page_bytes: int | None = None  # pages of about this size (``read.PageSize``)


class _ReadFailed(Exception):
    def __init__(self, side: str, outcome: retry.Outcome):
        super().__init__(f"reading the {side} failed: {type(outcome.error).__name__}: "
                         f"{outcome.error}")
        self.side = side
        self.outcome = outcome


class _ValidateWorkItemFn(beam.DoFn):
    WORK_ITEMS = "work_items"

    def __init__(self, options: ValidationOptions):
        self._options = options

    def setup(self):
        options = self._options
        self._sessions = {}
        self._queries = {}
        for name, side, where in (("source", options.source, options.where),
                                  ("target", options.target, None)):
            session = self._sessions[name] = shared_sessions.acquire(side.connection)
            self._queries[name] = TableQueries(
                session, side.keyspace, side.table, side.columns, options.fetch_size,
                options.cells, where, token=True, describe_cluster=side.connection.describe(),
                page_bytes=options.page_bytes)
        source_keys = self._queries["source"].key_columns
        self._target_keys = self._queries["target"].key_columns
        renames = options.renames
        # Where each source key column lands in a mapped row (target names).
        self._source_key_in_target = tuple(renames.get(name, name) for name in source_keys)
        self._partition_key = self._queries["target"].partition_key
        self._delete = None
        if options.delete_extra:
            self._prepare_deletes()
        namespace = options.metrics_namespace
        self._counters = {name: Metrics.counter(namespace, name) for name in (
            VALID, MISSING, EXTRA, MISMATCHED, NEWER_ON_TARGET, CHANGED_DURING_VALIDATION,
            OUT_OF_WINDOW, "deleted", "delete_failed", "delete_skipped", "extra_unchecked",
            "rows_read_source", "rows_read_target", "ranges_failed", "read_retries",
            "corrections_sent", "pages_downgraded", "correction_skipped")}
        self._differences = dead_letters.durable_file(options.differences_prefix, "differences")
        self._activity = Metrics.distribution(namespace, "activity_epoch_ms")

    def teardown(self):
        for queries in self._queries.values():
            queries.close()
        for side in (self._options.source, self._options.target):
            shared_sessions.release(side.connection)

    def _prepare_deletes(self):
        target = self._options.target
        session = self._sessions["target"]
        table = f"{quote(target.keyspace)}.{quote(target.table)}"
        # At the row's own newest writetime: what was seen goes, a later write stays.
        self._delete = session.prepare(f"DELETE FROM {table} USING TIMESTAMP ? WHERE "
                                       + " AND ".join(f"{quote(name)} = ?"
                                                      for name in self._target_keys))

    # ----------------------------------------------------------------- one work item

    def process(self, item: ReadWorkItem):
        options = self._options
        started = time.time()
        self._activity.update(int(started * 1000))
        counts: collections.Counter = collections.Counter()
        differences: list[dict] = []
        corrections = 0  # emitted as they are found: an item may be all missing
        rechecks: list[tuple] = []
        deletions = InFlight(32, self._deleted)
        self._item_counts = counts
        self._item_id = item.item_id
        # A source page read at the fallback consistency may lack rows a lagging replica has
        # not received: from then on an "extra" row may be one the source still has.
        self._source_downgraded = False
        source = self._mapped(self._rows("source", item, counts))
        target = self._rows("target", item, counts)
        try:
            for s, t in merge(source, target, _token_of, self._key_of):
                found = options.comparison.classify(s, t)
                if found.kind == CHANGED_DURING_VALIDATION and len(rechecks) < RECHECK_LIMIT:
                    rechecks.append((s, t))
                    continue
                correction = self._settle(found, s, t, counts, differences, deletions)
                if correction is not None:
                    corrections += 1
                    yield correction
                if len(differences) >= FLUSH_DIFFERENCES:
                    self._differences.append(differences)
                    differences = []
            for s, t in rechecks:
                s, t = self._read_again(s, t)
                found = options.comparison.classify(s, t)
                if found.kind not in (VALID, NEWER_ON_TARGET):
                    found = type(found)(CHANGED_DURING_VALIDATION, found.columns)
                correction = self._settle(found, s, t, counts, differences, deletions)
                if correction is not None:
                    corrections += 1
                    yield correction
        except _ReadFailed as failure:
            deletions.drain()
            self._counters["ranges_failed"].inc()
            _LOG.error("validating %s: %s of %s: %s", options.target.label, failure.side,
                       item.describe(), failure, exc_info=failure.outcome.error)
            # Nothing of the item is counted (it is done again on resume): nor recorded.
            if options.records and not options.auto_correct:
                yield beam.pvalue.TaggedOutput(self.WORK_ITEMS, self._record(
                    item, "failed", counts, started))
            elif options.auto_correct:  # its corrections so far are written all the same
                self._counters["corrections_sent"].inc(corrections)
                yield WorkItemEnd(item.item_id, corrections, True, started)
            return
        deletions.drain()
        self._activity.update(int(time.time() * 1000))
        if differences:
            self._differences.append(differences)
        for kind, rows in counts.items():
            if kind in self._counters:
                self._counters[kind].inc(rows)
        if options.auto_correct:
            self._counters["corrections_sent"].inc(corrections)
            if item.item_id is not None:
                yield WorkItemEnd(item.item_id, corrections, False, started,
                                  counts=tuple(sorted(counts.items())))
        elif options.records and item.item_id is not None:
            yield beam.pvalue.TaggedOutput(self.WORK_ITEMS, self._record(
                item, "done", counts, started))

    def _record(self, item, status, counts, started) -> dict:
        return {"item_id": item.item_id, "status": status,
                "rows_read": counts["rows_read_source"], "rows_written": 0, "rows_failed": 0,
                "rows_unchanged": 0, "started": started, "finished": time.time(),
                "counts": dict(counts) if status == "done" else None}

    def _rows(self, side: str, item: ReadWorkItem, counts) -> Iterator[Mapping]:
        options = self._options
        config = options.source if side == "source" else options.target
        for outcome in self._queries[side].pages(
                item, config.policy, replicas=side == "source",
                describe=lambda: f"validating {config.label}: reading {item.describe()}"):
            self._counters["read_retries"].inc(outcome.retries)
            if not outcome.ok:
                raise _ReadFailed(side, outcome)
            if outcome.downgraded:
                counts["pages_downgraded"] += 1
                if side == "source":
                    self._source_downgraded = True
            rows = outcome.result.current_rows
            counts[f"rows_read_{side}"] += len(rows)
            yield from rows

    def _mapped(self, rows):
        """Source rows in the target's names; those the migration's writetime window left out
        (asked of the row as read, as the migration asks it) marked so."""
        options = self._options
        comparison = options.comparison
        for row in rows:
            mapped = map_row(row, options.renames, options.constants)
            if not comparison.in_window(row):
                mapped = {**mapped, OUT_OF_WINDOW_KEY: True}
            yield mapped

    def _key_of(self, row: Mapping) -> tuple:
        return tuple(hashable(row.get(name)) for name in self._target_keys)

    def _settle(self, found, s, t, counts, differences, deletions) -> Mapping | None:
        """Count a pair, record it unless valid, delete an extra row if asked; return the
        row to write again when auto-correcting."""
        options = self._options
        kind = found.kind
        counts[kind] += 1
        if kind in (VALID, OUT_OF_WINDOW):
            return None
        if kind == EXTRA and options.where is not None:
            counts[kind] -= 1  # not selected by WHERE on the source: cannot tell
            counts["extra_unchecked"] += 1
            return None
        row = s if s is not None else t
        record = {"kind": kind, "table": options.target.label,
                  "source_table": options.source.label, "item": self._item_id,
                  "partition_key": {name: dead_letters.to_json(row.get(name))
                                    for name in self._partition_key},
                  "clustering": {name: dead_letters.to_json(row.get(name))
                                 for name in self._target_keys[len(self._partition_key):]}}
        if found.columns:
            record["columns"] = {name: {part: dead_letters.to_json(value)
                                        for part, value in cell.items()}
                                 for name, cell in found.columns.items()}
        differences.append(record)
        if options.delete_extra and kind == EXTRA:
            if self._source_downgraded:  # the source may still have it: never deleted
                counts["delete_skipped"] += 1
                record["delete_skipped"] = "the source was read at the fallback consistency"
            else:
                self._delete_row(t, deletions)
        if options.auto_correct and kind in (MISSING, MISMATCHED):
            if kind == MISMATCHED and options.cells.writetime and not options.kept.writetime:
                # Rewritten now, the source's cells would win over any write made on the
                # target after the copy, and without kept writetimes such a write cannot be
                # told from the copy's own: a missing row is written, a differing one left.
                counts["correction_skipped"] += 1
                record["correction_skipped"] = ("without PRESERVE_WRITETIME a write made on the "
                                                "target after the copy cannot be told from the "
                                                "copy: not overwritten")
                return None
            return self._correction(s)
        return None

    def _correction(self, row: Mapping) -> Mapping:
        row = {name: value for name, value in row.items() if name != TOKEN_KEY}
        return self._options.cells.keep_only(row, self._options.kept)

    # ----------------------------------------------------------------- changed rows

    def _read_again(self, s: Mapping | None, t: Mapping | None):
        """Both sides of a row changed during the validation, as they are now (either may
        have been absent at the first look)."""
        row = s if s is not None else t
        source_key = tuple(row.get(name) for name in self._source_key_in_target)
        target_key = tuple(row.get(name) for name in self._target_keys)
        if any(value is None for value in (*source_key, *target_key)):
            return s, t  # a partition's static row: no key to read it by
        fresh = []
        for side, key in (("source", source_key), ("target", target_key)):
            config = self._options.source if side == "source" else self._options.target
            session = self._queries[side].session
            statement = self._queries[side].row_query.bind(key)
            label = f"validating {config.label}: reading a row again"
            outcome = outcome_of(send(session, statement, config.policy.consistency),
                                 resend(session, statement), config.policy,
                                 describe=lambda label=label: label)
            if not outcome.ok:
                raise _ReadFailed(side, outcome)
            found = outcome.result.one()
            fresh.append(found if found is None or side == "target" else map_row(
                found, self._options.renames, self._options.constants))
        return fresh[0], fresh[1]

    # ----------------------------------------------------------------- extra rows

    def _delete_row(self, row: Mapping, deletions: InFlight) -> None:
        session = self._sessions["target"]
        values = [row.get(name) for name in self._target_keys]
        if any(value is None for value in values[len(self._partition_key):]):
            # A partition's static cells alone: deleting them would take the partition, rows
            # the source may have (and a rewrite of them would stay shadowed). Left, counted.
            self._item_counts["delete_skipped"] += 1
            return
        newest = newest_writetime(row)
        timestamp = newest if newest is not None else int(time.time() * 1_000_000)
        statement = self._delete.bind([timestamp, *values])
        policy = self._options.write_policy
        deletions.add((session, statement, send(session, statement, policy.consistency)))

    def _deleted(self, entry) -> None:
        session, statement, future = entry
        policy = self._options.write_policy
        outcome = outcome_of(future, resend(session, statement), policy,
                             describe=lambda: f"deleting an extra row of "
                                              f"{self._options.target.label}")
        if outcome.ok:
            self._item_counts["deleted"] += 1
        else:
            self._item_counts["delete_failed"] += 1
            _LOG.error("could not delete an extra row of %s: %s", self._options.target.label,
                       outcome.error)


def _token_of(row: Mapping):
    return row[TOKEN_KEY]


class ValidateTable(beam.PTransform):
    """Validate one table: ``work_items`` in, and out ``corrections`` (rows for
    ``WriteToCassandra``, with a ``WorkItemEnd`` after each item's, when auto-correcting) and
    ``work_items`` (a record of each item, for ``RecordWorkItems``, when not)."""

    def __init__(self, options: ValidationOptions, work_items: list[ReadWorkItem]):
        super().__init__()
        self._options = options
        self._work_items = work_items

    def expand(self, pbegin):
        return (pbegin
                | "WorkItems" >> beam.Create(self._work_items)
                | "SpreadWorkItems" >> beam.Reshuffle()
                | "Compare" >> beam.ParDo(_ValidateWorkItemFn(self._options)).with_outputs(
                    _ValidateWorkItemFn.WORK_ITEMS, main="corrections"))
