"""What every row-writing DoFn shares: the session, the table's key columns, the per-table
counters, the rate limit, the FAILED_ROWS / DOWNGRADED_ROWS outputs, and the accounting of
work items.

Subclasses (``write._WriteRowsFn``, ``counters._WriteCountersFn``) write rows and report each
row's end with ``_written``, ``_dead_letter`` (and ``_downgraded``); they override
``_write`` (some rows of one work item) and ``_complete_all`` (wait for what is in flight).

Work items. When the reader follows each work item's rows with a ``read.WorkItemEnd``, the
rows between two ends belong to one item (a reader emits an item's rows and then its end, and
read, bundle and write are fused, so they arrive in that order). An item is *settled* once its
end has arrived and every one of its rows is written or dead-lettered; only then is it emitted
on the ``WORK_ITEMS`` output (for the run ledger), after its dead letters are durable.

Dead letters. With ``dead_letter_prefix`` the writer itself appends its dead letters to a
JSON Lines file per process (``<prefix>.failed_rows.<random id>.jsonl``; on a file system that
cannot append, such as gs://, a new file per flush), flushed and fsynced before any item that
holds them is settled and at the end of every bundle, and counts ``rows_failed`` only once a
record is durable: the count of failed rows is the count of records in those files, by
construction. The records still go to the ``FAILED_ROWS`` output too, for a pipeline that wants
them as a PCollection. Without it, dead letters go to that output only. A runner that retries a
bundle appends that bundle's dead letters again (the DirectRunner does not retry bundles).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms import dead_letters, progress, retry
from transforms.connection import CassandraConnection, shared_sessions, table_metadata
from transforms.ledger import ControlOptions
from transforms.rate_limit import RateLimit
from transforms.read import WorkItemEnd

_LOG = logging.getLogger("transforms.write")  # its records are the writer's


class ItemTally:
    """The rows of one work item in a writer: how many are still on their way, and what the
    others ended in."""

    __slots__ = ("end", "pending", "written", "failed", "skipped", "unchanged",
                 "dead_letters", "downgraded", "downgraded_records")

    def __init__(self):
        self.end: WorkItemEnd | None = None
        self.pending = 0
        self.written = 0
        self.failed = 0
        self.skipped = 0
        self.unchanged = 0
        self.dead_letters: list[dict] = []
        self.downgraded = 0  # rows written at the fallback consistency
        self.downgraded_records: list[dict] = []  # their records, until made durable


class RowWriterFn(beam.DoFn):
    FAILED_ROWS = "failed_rows"
    DOWNGRADED_ROWS = "downgraded_rows"
    WORK_ITEMS = "work_items"
    COUNTERS = ("rows_written", "rows_failed", "rows_skipped", "write_retries",
                "consistency_downgrades", "outage_ms", "bytes_written")

    def __init__(self, connection: CassandraConnection, keyspace: str, table: str,
                 policy: retry.RetryPolicy, max_in_flight: int, metrics_namespace: str,
                 rate: RateLimit | None = None, dead_letter_prefix: str | None = None,
                 control: ControlOptions | None = None):
        self._connection = connection
        self._keyspace = keyspace
        self._table = table
        self._policy = policy
        self._max_in_flight = max_in_flight
        self._namespace = metrics_namespace
        self._rate = rate
        self._dead_letter_prefix = dead_letter_prefix
        self._control_options = control
        self._ledger_connection = None  # set in setup when the rate limit uses the ledger
        self._label = f"{keyspace}.{table}"

    def setup(self):
        self._session = shared_sessions.acquire(self._connection)
        self._table_metadata = table_metadata(self._session, self._keyspace, self._table)
        if self._table_metadata is None:
            raise ValueError(f"table {self._label} does not exist on "
                             f"{self._connection.describe()}")
        self._partition_key = tuple(column.name for column in self._table_metadata.partition_key)
        self._clustering_key = tuple(column.name
                                     for column in self._table_metadata.clustering_key)
        self._key_columns = self._partition_key + self._clustering_key
        self._counters = {name: Metrics.counter(self._namespace, name) for name in self.COUNTERS}
        self._activity = Metrics.distribution(self._namespace, "activity_epoch_ms")
        self._progress = progress.tracker()
        # One limiter per run per process; with a ledger, its share follows the run's writers,
        # through the ledger's session, held here while the writer lives.
        ledger = self._control_options.ledger if self._control_options is not None else None
        self._limiter = self._rate.limiter(ledger) if self._rate is not None else None
        self._ledger_connection = (ledger.connection
                                   if ledger is not None and self._rate is not None else None)
        if self._ledger_connection is not None:
            shared_sessions.acquire(self._ledger_connection)
        self._dead_letter_file = (dead_letters.durable_file(self._dead_letter_prefix, "failed_rows")
                                  if self._dead_letter_prefix else None)
        # Rows written at the fallback consistency are listed the same way: on disk before
        # their work item is recorded done, so a killed run loses none of the list.
        self._downgraded_file = (
            dead_letters.durable_file(self._dead_letter_prefix, self.DOWNGRADED_ROWS)
            if self._dead_letter_prefix else None)
        self._control = (self._control_options.control()
                         if self._control_options is not None else None)
        self._outage_clock = retry.outage_clock(self._namespace)

    def teardown(self):
        if self._ledger_connection is not None:
            shared_sessions.release(self._ledger_connection)
        shared_sessions.release(self._connection)

    def start_bundle(self):
        self._outputs: list[tuple[str, dict]] = []
        self._open: ItemTally | None = None
        self._unsettled: list[ItemTally] = []

    def process(self, elements: list):
        """A bundle of rows, with the ends of work items among them."""
        rows = []
        for element in elements:
            if isinstance(element, WorkItemEnd):
                if rows:
                    self._write_rows(rows)
                    rows = []
                self._end_item(element)
            else:
                rows.append(element)
        if rows:
            self._write_rows(rows)
        yield from self._drain_outputs()

    def finish_bundle(self):
        self._complete_all()
        self._flush_records(self._unsettled)  # the open item's too: it is among them
        self._activity.update(int(time.time() * 1000))
        for tag, record in self._take_outputs():
            yield beam.pvalue.TaggedOutput(tag, GlobalWindows.windowed_value(record))

    def _write(self, rows: list[Mapping], tally: ItemTally) -> None:
        """Start writing some rows of one work item; each ends in ``_written`` or
        ``_dead_letter`` with ``tally``, now or when ``_complete_all`` runs."""
        raise NotImplementedError

    def _complete_all(self):
        """Wait for every request still in flight (and handle its outcome)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- work items

    def _stopped(self) -> bool:
        return self._control is not None and self._control.stopped is not None

    def _check_not_stopped(self) -> None:
        """Before a resend: a stopped table's rows are left for a resume instead."""
        if self._stopped():
            raise retry.TableStopped(f"{self._label} was stopped")

    def _open_tally(self) -> ItemTally:
        """The tally of the work item whose rows are arriving now (its end is still to come)."""
        if self._open is None:
            self._open = ItemTally()
            self._unsettled.append(self._open)
        return self._open

    def _write_rows(self, rows: list[Mapping]) -> None:
        tally = self._open_tally()
        tally.pending += len(rows)
        if self._stopped():
            # The table was stopped: its rows stay unwritten and its item pending, for a resume.
            self._skipped(len(rows), tally)
            return
        if self._limiter is not None:
            self._limiter.acquire(len(rows))
        self._write(rows, tally)

    def _end_item(self, end: WorkItemEnd) -> None:
        tally = self._open_tally()
        self._open = None
        tally.end = end
        self._settle_if_done(tally)

    def _settle_if_done(self, tally: ItemTally) -> None:
        if tally.end is None or tally.pending:
            return
        self._unsettled.remove(tally)
        self._flush_records([tally])
        if tally.skipped:
            return  # not all of it was written: it stays pending
        settled = tally.written + tally.failed + tally.unchanged
        if settled != tally.end.rows_read - tally.end.rows_filtered:
            _LOG.error("work item %s of %s: %d rows read, %d filtered, but %d settled here: "
                       "left pending (are its rows and its end in one fused bundle?)",
                       tally.end.item_id, self._label, tally.end.rows_read,
                       tally.end.rows_filtered, settled)
            return
        status = "failed" if tally.failed or tally.end.read_failed else "done"
        if self._control is not None:
            self._control.recorded(tally.failed)
        counts = dict(tally.end.counts)
        if tally.downgraded:  # the run's whole list of them survives a resume in the ledger
            counts["rows_downgraded"] = tally.downgraded
        self._outputs.append((self.WORK_ITEMS, {
            "item_id": tally.end.item_id, "status": status, "rows_read": tally.end.rows_read,
            "rows_written": tally.written, "rows_failed": tally.failed,
            "rows_unchanged": tally.unchanged, "started": tally.end.started,
            "finished": time.time(), "counts": counts or None}))

    # ----------------------------------------------------------------- outcomes

    def _account(self, outcome: retry.Outcome) -> None:
        """Count a request's retries and the time it waited for an unreachable cluster."""
        self._counters["write_retries"].inc(outcome.retries)
        self._counters["outage_ms"].inc(self._outage_clock.new_milliseconds(outcome))
        if outcome.retries:
            self._progress.count("retries", outcome.retries)

    def _written(self, rows: int, tally: ItemTally, unchanged: bool = False,
                 size: int = 0) -> None:
        """``rows`` of ``tally``'s item written (``size`` bytes of values), or found
        ``unchanged`` (counters)."""
        self._counters["rows_unchanged" if unchanged else "rows_written"].inc(rows)
        if size:
            self._counters["bytes_written"].inc(size)
        self._progress.add(self._namespace, rows, size)
        if unchanged:
            tally.unchanged += rows
        else:
            tally.written += rows
        tally.pending -= rows
        self._settle_if_done(tally)

    def _skipped(self, rows: int, tally: ItemTally) -> None:
        """Rows of a stopped table, on their way or just arrived: not written, their item
        pending."""
        self._counters["rows_skipped"].inc(rows)
        tally.skipped += rows
        tally.pending -= rows
        self._settle_if_done(tally)

    def _downgraded(self, rows: list[Mapping], consistency: int, tally: ItemTally) -> None:
        """Rows written at the fallback level: counted and listed for a later repair (the
        list made durable with the item's dead letters, before the item is settled)."""
        self._counters["consistency_downgrades"].inc(len(rows))
        self._progress.count("downgrades", len(rows))
        tally.downgraded += len(rows)
        level = retry.consistency_name(consistency)
        records = [{"table": self._label, **self._key_of(row), "consistency": level}
                   for row in rows]
        if self._downgraded_file is None:
            self._outputs.extend((self.DOWNGRADED_ROWS, record) for record in records)
        else:
            tally.downgraded_records += records

    def _dead_letter(self, row: Mapping, outcome: retry.Outcome, tally: ItemTally,
                     what: str = "row", groups: list | None = None,
                     replayable: bool = True) -> None:
        """A row that could not be written: logged with its key, kept, and counted once its
        record is durable."""
        key = self._key_of(row)
        _LOG.error("%s not written to %s (partition %s, clustering %s) after %d attempts: %s: %s",
                   what, self._label, key["partition_key"], key["clustering"],
                   outcome.attempts, type(outcome.error).__name__, outcome.error,
                   exc_info=outcome.error)
        record = dead_letters.failed_row_record(self._keyspace, self._table, key, row, outcome,
                                                groups)
        if not replayable:
            record["cql"] = None
        if retry.is_table_fatal(outcome.error) and self._control is not None:
            self._control.stop(f"the target refuses the table: {type(outcome.error).__name__}: "
                               f"{outcome.error}")
        tally.failed += 1
        tally.pending -= 1
        self._progress.count("dead letters")
        if self._dead_letter_file is None:
            self._counters["rows_failed"].inc()
            self._outputs.append((self.FAILED_ROWS, record))
        else:
            tally.dead_letters.append(record)
        if self._control is not None:
            self._control.failures(1)
        self._settle_if_done(tally)

    def _flush_records(self, tallies: Iterable[ItemTally]) -> None:
        """Make the items' dead letters and downgraded-row records durable (then count
        the dead letters as failed rows)."""
        records, downgraded = [], []
        for tally in tallies:
            records += tally.dead_letters
            tally.dead_letters = []
            downgraded += tally.downgraded_records
            tally.downgraded_records = []
        if downgraded:
            self._downgraded_file.append(downgraded)
        if not records:
            return
        self._dead_letter_file.append(records)
        self._counters["rows_failed"].inc(len(records))
        for record in records:
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


def write_in_bundles(rows, batch_size: int, step: str, writer: beam.DoFn):
    """rows -> bundles of at most ``batch_size`` (fused, no shuffle) -> ``writer``; returns its
    outputs: ``written`` (nothing), ``failed_rows``, ``downgraded_rows`` and ``work_items``."""
    return (
        rows
        | "Bundle" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size,
                                         record_metrics=False)
        | step >> beam.ParDo(writer).with_outputs(
            RowWriterFn.FAILED_ROWS, RowWriterFn.DOWNGRADED_ROWS, RowWriterFn.WORK_ITEMS,
            main="written")
    )
