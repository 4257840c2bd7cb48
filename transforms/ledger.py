"""The run ledger: a durable record of every work item of a run, in tables of the target cluster.

A work item (a token range, or a listed partition, of one table) is recorded as ``pending``
before the pipeline starts, and as ``done`` or ``failed`` with its counts only once every row it
read is acknowledged by the target or durably in a dead-letter file (``transforms.row_writer``). A
run killed at any point therefore leaves every item it did not finish ``pending`` or
``failed``, and ``--resume`` does exactly those again. The ledger lives in the target cluster,
which every worker of every runner reaches already.

Tables (in ``LEDGER_KEYSPACE``):

* ``runs``: one row per run, keyed by the settings file it ran from (so "the latest run of this
  settings file" is one query), with the tables it copies.
* ``work_items``: one row per work item of a run: range or partition, status, rows read,
  written and failed, the attempts (invocations of the run) that recorded it, and the start
  and end of the latest.
* ``table_stops``: a table stopped early in a run (error budget exceeded, or the table itself is
  wrong), so workers in other processes stop taking its work too.
* ``writers``: the processes writing for a run attempt at the moment, each beating its row
  every half second while it writes (rows expire after a minute): how MAX_ROWS_PER_SECOND is
  shared among them (``transforms.rate_limit``).

The ledger is written at the target's QUORUM with the driver's own retries off like every
request of this project; a failed ledger write leaves an item ``pending``, which costs a redo on
resume, never a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import apache_beam as beam
from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import UNSET_VALUE

from transforms import retry
from transforms.connection import CassandraConnection, shared_sessions
from transforms.cql import quote
from transforms.process_cache import PerProcess
from transforms.requests import InFlight, outcome_of, resend, send

__all__ = ["ControlOptions", "Ledger", "LedgerOptions", "LiveWriters", "RecordWorkItems",
           "RunRecord", "WorkItemRecord", "new_run_id"]

_LOG = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {ks}.runs (
        settings text, run_id text, started_at timestamp, tables list<text>,
        fingerprints map<text, text>,
        PRIMARY KEY ((settings), run_id)) WITH CLUSTERING ORDER BY (run_id DESC)""",
    """CREATE TABLE IF NOT EXISTS {ks}.work_items (
        run_id text, table_name text, item_id text, token_start varint, token_end varint,
        replicas list<text>, partition_index int, status text, rows_read bigint,
        rows_written bigint, rows_failed bigint, attempt_ids set<text>, attempt text,
        started_at timestamp, finished_at timestamp, counts map<text, bigint>,
        PRIMARY KEY ((run_id), table_name, item_id))""",
    """CREATE TABLE IF NOT EXISTS {ks}.table_stops (
        run_id text, table_name text, reason text, stopped_at timestamp,
        PRIMARY KEY ((run_id), table_name))""",
    # Beats of a run's writers: overwritten twice a second, read by partition; the TTL clears
    # them, and expired beats of a finished run need no long gc_grace.
    """CREATE TABLE IF NOT EXISTS {ks}.writers (
        run_id text, attempt text, writer text, seen timestamp,
        PRIMARY KEY ((run_id, attempt), writer))
        WITH default_time_to_live = 60 AND gc_grace_seconds = 3600""",
)


# Columns added to the ledger's tables since they were first released: added to an older ledger.
_COLUMNS_ADDED = {"work_items": {"attempt": "text", "attempt_ids": "set<text>",
                                  "counts": "map<text, bigint>"},
                   "runs": {"fingerprints": "map<text, text>"}}


def new_run_id(started: float | None = None) -> str:
    """A run id that sorts by start time: UTC start, then a random suffix."""
    moment = time.gmtime(time.time() if started is None else started)
    return f"{time.strftime('%Y%m%dT%H%M%SZ', moment)}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LedgerOptions:
    """Where the ledger is and which run it records: travels inside DoFns. ``attempt`` tells
    the invocations of one run apart (a resume is a new attempt of the same run)."""

    connection: CassandraConnection
    keyspace: str
    run_id: str
    attempt: str = ""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    started_at: datetime.datetime | None
    tables: tuple[str, ...]
    # What each table's done items depend on (``pipelines.runs.fingerprint``); empty for a run
    # recorded by an earlier version.
    fingerprints: dict = field(default_factory=dict)
    identity: str = ""  # what the run is recorded under (``pipelines.runs.run_identity``)


def _run_record(row) -> RunRecord:
    return RunRecord(row["run_id"], row["started_at"], tuple(row["tables"] or ()),
                     dict(row["fingerprints"] or {}), row["settings"])


@dataclass(frozen=True)
class WorkItemRecord:
    table: str
    item_id: str
    token_start: int | None
    token_end: int | None
    replicas: tuple[str, ...]
    partition_index: int | None
    status: str
    rows_read: int
    rows_written: int
    rows_failed: int
    attempts: int
    counts: dict  # what a validation found in the item (``transforms.validate``), by kind


class Ledger:
    """Reads and writes the ledger through a session of the target cluster."""

    def __init__(self, session, keyspace: str):
        self._session = session
        self._keyspace = keyspace
        ks = quote(keyspace)
        self._prepared = {}
        self._statements = {
            "run": f"INSERT INTO {ks}.runs (settings, run_id, started_at, tables, "
                   "fingerprints) VALUES (?, ?, ?, ?, ?)",
            "runs": f"SELECT run_id, started_at, tables, fingerprints FROM {ks}.runs "
                    "WHERE settings = ?",
            # The runs table is small (a row per run): scanned to find a run by its id alone,
            # and to list them all.
            "run_by_id": f"SELECT settings, run_id, started_at, tables, fingerprints "
                         f"FROM {ks}.runs WHERE run_id = ? ALLOW FILTERING",
            "all_runs": f"SELECT settings, run_id, started_at, tables, fingerprints "
                        f"FROM {ks}.runs",
            "pending": f"INSERT INTO {ks}.work_items (run_id, table_name, item_id, token_start, "
                       "token_end, replicas, partition_index, status, rows_read, rows_written, "
                       "rows_failed) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, 0)",
            # One write, no read first: adding to a set is idempotent, so a retried record
            # counts its attempt once.
            "finish": f"UPDATE {ks}.work_items SET status = ?, rows_read = ?, rows_written = ?, "
                      "rows_failed = ?, attempt_ids = attempt_ids + ?, attempt = ?, "
                      "started_at = ?, finished_at = ?, counts = ? "
                      "WHERE run_id = ? AND table_name = ? AND item_id = ?",
            "items": f"SELECT table_name, item_id, token_start, token_end, replicas, "
                     "partition_index, status, rows_read, rows_written, rows_failed, attempt_ids, "
                     "counts "
                     f"FROM {ks}.work_items WHERE run_id = ?",
            "failed": f"SELECT rows_failed, attempt FROM {ks}.work_items WHERE run_id = ? "
                      "AND table_name = ?",
            "stop": f"INSERT INTO {ks}.table_stops (run_id, table_name, reason, stopped_at) "
                    "VALUES (?, ?, ?, ?)",
            "stops": f"SELECT table_name, reason FROM {ks}.table_stops WHERE run_id = ?",
            "clear_stops": f"DELETE FROM {ks}.table_stops WHERE run_id = ?",
            # Both times from the coordinator's clock: workers' clocks need not agree.
            "beat": f"INSERT INTO {ks}.writers (run_id, attempt, writer, seen) "
                    "VALUES (?, ?, ?, toTimestamp(now())) USING TTL 60",
            "writers": f"SELECT writer, seen, toTimestamp(now()) AS now FROM {ks}.writers "
                       "WHERE run_id = ? AND attempt = ?",
        }

    # ------------------------------------------------------------------ schema

    @staticmethod
    def create_schema(session, keyspace: str) -> None:
        """Create the ledger keyspace (if missing) and its tables; raises what Cassandra says
        (Unauthorized when the user may not create them)."""
        metadata = session.cluster.metadata
        if keyspace not in metadata.keyspaces:
            replicas = min(3, max(1, len(metadata.all_hosts())))
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {quote(keyspace)} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {replicas}}}")
        existing = metadata.keyspaces.get(keyspace)
        for statement in _SCHEMA:
            table = statement.split("{ks}.", 1)[1].split(" ", 1)[0]
            if existing is None or table not in existing.tables:  # CREATE needs the permission
                session.execute(statement.format(ks=quote(keyspace)))
                continue
            for column, cql_type in _COLUMNS_ADDED.get(table, {}).items():
                if column not in existing.tables[table].columns:  # a ledger of an earlier version
                    session.execute(f"ALTER TABLE {quote(keyspace)}.{table} "
                                    f"ADD {column} {cql_type}")
        session.cluster.control_connection.wait_for_schema_agreement()

    def _statement(self, name: str):
        prepared = self._prepared.get(name)
        if prepared is None:
            prepared = self._prepared[name] = self._session.prepare(self._statements[name])
            prepared.consistency_level = ConsistencyLevel.QUORUM
        return prepared

    # ------------------------------------------------------------------ runs

    def start_run(self, settings: str, run_id: str, tables: Iterable[str],
                  fingerprints: dict | None = None) -> None:
        self._session.execute(self._statement("run"), (
            settings, run_id, datetime.datetime.now(datetime.timezone.utc), list(tables),
            fingerprints or {}))

    def runs(self, settings: str) -> list[RunRecord]:
        """The runs recorded under one identity, latest first."""
        return [RunRecord(row["run_id"], row["started_at"], tuple(row["tables"] or ()),
                          dict(row["fingerprints"] or {}), settings)
                for row in self._session.execute(self._statement("runs"), (settings,))]

    def run(self, run_id: str) -> RunRecord | None:
        """A run found by its id alone, whatever it was recorded under."""
        row = self._session.execute(self._statement("run_by_id"), (run_id,)).one()
        return None if row is None else _run_record(row)

    def all_runs(self) -> list[RunRecord]:
        """Every run of the ledger, latest first."""
        records = [_run_record(row) for row in self._session.execute(self._statement("all_runs"))]
        return sorted(records, key=lambda record: record.run_id, reverse=True)

    # ------------------------------------------------------------------ work items

    def add_pending(self, run_id: str, table: str, items: list[tuple]) -> None:
        """``items``: (item_id, token_start, token_end, replicas, partition_index) each."""
        results = execute_concurrent_with_args(
            self._session, self._statement("pending"),
            [(run_id, table, *item) for item in items], concurrency=64, raise_on_first_error=True)
        for success, result in results:
            if not success:
                raise result

    def items(self, run_id: str) -> list[WorkItemRecord]:
        return [WorkItemRecord(row["table_name"], row["item_id"], row["token_start"],
                               row["token_end"], tuple(row["replicas"] or ()),
                               row["partition_index"], row["status"], row["rows_read"] or 0,
                               row["rows_written"] or 0, row["rows_failed"] or 0,
                               len(row["attempt_ids"] or ()), dict(row["counts"] or {}))
                for row in self._session.execute(self._statement("items"), (run_id,))]

    def finish_item(self, run_id: str, table: str, item_id: str, status: str, rows_read: int,
                    rows_written: int, rows_failed: int, started: float, finished: float,
                    attempt: str = "", counts: dict | None = None):
        """The statement that records a settled item (to send at the write's consistency);
        ``counts``: what a validation found in it."""
        return self._statement("finish").bind((
            status, rows_read, rows_written, rows_failed, {attempt}, attempt,
            _timestamp(started), _timestamp(finished), UNSET_VALUE if counts is None else counts,
            run_id, table, item_id))

    def failed_rows(self, run_id: str, table: str, attempt: str) -> int:
        """Rows failed in the items recorded by one attempt of the run (earlier attempts'
        failed items are being done again)."""
        return sum(row["rows_failed"] or 0 for row in
                   self._session.execute(self._statement("failed"), (run_id, table))
                   if row["attempt"] == attempt)

    # ------------------------------------------------------------------ stops

    def stop_table(self, run_id: str, table: str, reason: str) -> None:
        self._session.execute(self._statement("stop"), (
            run_id, table, reason, datetime.datetime.now(datetime.timezone.utc)))

    def clear_stops(self, run_id: str) -> None:
        """A resume: the causes of earlier stops are taken as fixed."""
        self._session.execute(self._statement("clear_stops"), (run_id,))

    def stops(self, run_id: str) -> dict[str, str]:
        return {row["table_name"]: row["reason"]
                for row in self._session.execute(self._statement("stops"), (run_id,))}

    # ------------------------------------------------------------------ writers

    def beat(self, run_id: str, attempt: str, writer: str, timeout: float):
        """Record that ``writer`` writes for the run now; returns the request's future."""
        return self._session.execute_async(self._statement("beat"), (run_id, attempt, writer),
                                           timeout=timeout)

    def writers(self, run_id: str, attempt: str, timeout: float):
        """The run's writers' beats; returns the request's future, whose rows
        ``writer_ages`` reads."""
        return self._session.execute_async(self._statement("writers"), (run_id, attempt),
                                           timeout=timeout)


def writer_ages(rows) -> dict[str, float]:
    """Seconds since each writer's last beat, by the coordinator's clock."""
    return {row["writer"]: (row["now"] - row["seen"]).total_seconds() for row in rows}


def _timestamp(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def item_id_of_range(start: int, end: int) -> str:
    return f"range:{start}:{end}"


def item_id_of_partition(index: int, values: tuple) -> str:
    return f"partition:{index}:{json.dumps([repr(value) for value in values])}"


class TableControl:
    """What the workers of one process know of a table in a run: whether it was stopped (here,
    or by another process through the ledger), and how many rows failed (here, in items not yet
    recorded, plus the ledger's count of recorded ones, refreshed at most every few seconds).

    One per (run, table) per process, shared by its readers and writers (``control_for``)."""

    REFRESH_SECONDS = 5.0

    def __init__(self, options: LedgerOptions | None, table: str, max_failed_rows: int | None,
                 max_failed_share: float | None):
        self._options = options
        self._table = table
        self._max_rows = max_failed_rows
        self._max_share = max_failed_share
        self._lock = threading.Lock()
        self._stopped: str | None = None
        self._unrecorded_failures = 0  # in items of this process not yet in the ledger
        self._recorded_here = 0  # in items of this process already in the ledger
        self._recorded_anywhere = 0  # in items of this attempt in the ledger, any process
        self._rows_read = 0  # by this process
        self._refreshed = 0.0
        self._ledger_of: tuple | None = None

    @property
    def stopped(self) -> str | None:
        """Why the table stopped, or None; refreshed from the ledger now and then."""
        self._refresh()
        return self._stopped

    def rows_read(self, rows: int) -> None:
        with self._lock:
            self._rows_read += rows

    def failures(self, rows: int) -> None:
        """Rows that failed in items not yet recorded in the ledger."""
        with self._lock:
            self._unrecorded_failures += rows
        self._check_budget()

    def recorded(self, failed_rows: int) -> None:
        """An item's failures are now in the ledger (counted there from now on)."""
        with self._lock:
            self._unrecorded_failures -= failed_rows
            self._recorded_here += failed_rows

    def stop(self, reason: str) -> None:
        with self._lock:
            if self._stopped is not None:
                return
            self._stopped = reason
        _LOG.error("%s: stopping this table: %s", self._table, reason)
        if self._options is None:
            return  # no ledger: this process stops the table, others find out for themselves
        try:
            with self._ledger() as ledger:
                ledger.stop_table(self._options.run_id, self._table, reason)
        except Exception as error:  # noqa: BLE001 - this process stops the table anyway
            _LOG.warning("could not record the stop of %s in the ledger: %s", self._table, error)

    @contextlib.contextmanager
    def _ledger(self):
        """The ledger through the process's shared session of the target (held by the writers
        while they run: a control keeps none of its own)."""
        session = shared_sessions.acquire(self._options.connection)
        try:
            if self._ledger_of is None or self._ledger_of[0] is not session:
                self._ledger_of = (session, Ledger(session, self._options.keyspace))
            yield self._ledger_of[1]
        finally:
            shared_sessions.release(self._options.connection)

    def _check_budget(self) -> None:
        if self._max_rows is None and self._max_share is None:
            return
        self._refresh()
        with self._lock:
            # The run's count: the ledger's (all processes), or ours if it is not there yet.
            failed = self._unrecorded_failures + max(self._recorded_here,
                                                     self._recorded_anywhere)
            # A share compares like with like: this process's failures and reads.
            failed_here = self._unrecorded_failures + self._recorded_here
            read = self._rows_read
        over = []
        if self._max_rows is not None and failed > self._max_rows:
            over.append(f"{failed:,} rows failed, more than MAX_FAILED_ROWS {self._max_rows:,}")
        if (self._max_share is not None and read >= 100
                and failed_here > self._max_share * read):
            over.append(f"{failed_here:,} of {read:,} rows read failed, more than "
                        f"MAX_FAILED_ROWS {self._max_share:.1%}")
        if over:
            self.stop("; ".join(over))

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._options is None or now - self._refreshed < self.REFRESH_SECONDS:
            return
        self._refreshed = now
        try:
            with self._ledger() as ledger:
                stops = ledger.stops(self._options.run_id)
                recorded = ledger.failed_rows(self._options.run_id, self._table,
                                              self._options.attempt)
        except Exception as error:  # noqa: BLE001 - the next refresh tries again
            _LOG.debug("could not read the ledger: %s", error)
            return
        with self._lock:
            if self._table in stops and self._stopped is None:
                self._stopped = stops[self._table]
            self._recorded_anywhere = recorded


_CONTROLS: PerProcess[TableControl] = PerProcess(TableControl)


class LiveWriters:
    """The writers of a run in the ledger, for the rate limit (``transforms.rate_limit``): a
    beat is one write and one single-partition read, sent without waiting; the answer comes
    on the driver's thread. Through the process's shared session of the target, which the
    writers hold while they write."""

    TIMEOUT_SECONDS = 2.0

    def __init__(self, options: LedgerOptions):
        self._options = options
        self._ledger_of: tuple | None = None

    def beat(self, writer: str, then) -> None:
        options = self._options
        session = shared_sessions.acquire(options.connection)
        try:
            if self._ledger_of is None or self._ledger_of[0] is not session:
                self._ledger_of = (session, Ledger(session, options.keyspace))
            ledger = self._ledger_of[1]
            beat = ledger.beat(options.run_id, options.attempt, writer, self.TIMEOUT_SECONDS)
            beat.add_errback(lambda error: _LOG.debug("could not beat in the ledger: %s", error))
            look = ledger.writers(options.run_id, options.attempt, self.TIMEOUT_SECONDS)
        finally:
            shared_sessions.release(options.connection)
        look.add_callbacks(lambda rows: _answer(then, rows), then)


def _answer(then, rows) -> None:
    try:
        ages = writer_ages(rows)
    except Exception as error:  # noqa: BLE001 - a strange answer is an error like any other
        ages = error
    then(ages)


@dataclass(frozen=True)
class ControlOptions:
    """What a reader or writer needs to join a table's control: picklable. Without a ledger,
    each worker process keeps the budget and the stop to itself. ``attempt`` tells the
    invocations of a run apart (a process may serve several, as tests do)."""

    ledger: LedgerOptions | None
    table: str
    max_failed_rows: int | None = None
    max_failed_share: float | None = None
    attempt: str = ""

    def control(self) -> TableControl:
        return _CONTROLS.get((self.attempt, self.table), self.ledger, self.table,
                             self.max_failed_rows, self.max_failed_share)


class _RecordWorkItemsFn(beam.DoFn):
    def __init__(self, options: LedgerOptions, table: str, policy: retry.RetryPolicy):
        self._options = options
        self._table = table
        self._policy = policy

    def setup(self):
        self._session = shared_sessions.acquire(self._options.connection)
        self._ledger = Ledger(self._session, self._options.keyspace)

    def teardown(self):
        shared_sessions.release(self._options.connection)

    def start_bundle(self):
        self._in_flight = InFlight(16, self._complete)

    def process(self, record: dict):
        # Sent at once, waited for a few records later (and at the end of the bundle), so the
        # writer's thread does not wait for every record's round trip.
        statement = self._ledger.finish_item(
            self._options.run_id, self._table, record["item_id"], record["status"],
            record["rows_read"], record["rows_written"] + record["rows_unchanged"],
            record["rows_failed"], record["started"], record["finished"], self._options.attempt,
            record.get("counts"))
        self._in_flight.make_room()
        self._in_flight.add((record, statement,
                             send(self._session, statement, self._policy.consistency)))

    def finish_bundle(self):
        self._in_flight.drain()

    def _complete(self, entry):
        record, statement, future = entry
        # Retried like any write, outages waited out: a target restart must not leave the
        # items it interrupted pending.
        outcome = outcome_of(
            future, resend(self._session, statement), self._policy,
            describe=lambda: f"recording work item {record['item_id']} of {self._table} "
                             "in the ledger")
        if not outcome.ok:  # the item stays pending: done again on resume
            _LOG.warning("could not record work item %s of %s in the ledger (it will be done "
                         "again on resume): %s", record["item_id"], self._table, outcome.error)


class RecordWorkItems(beam.PTransform):
    """Record settled work items (``WriteToCassandra``'s ``work_items`` output) in the ledger."""

    def __init__(self, options: LedgerOptions, table: str,
                 policy: retry.RetryPolicy | None = None):
        super().__init__()
        # The ledger is written at QUORUM or not at all: a record at ONE could be missed by
        # the QUORUM read of a resume.
        policy = dataclasses.replace(policy or retry.RetryPolicy(), fallback_consistency=None)
        self._fn = _RecordWorkItemsFn(options, table, policy)

    def expand(self, records):
        return records | beam.ParDo(self._fn)
