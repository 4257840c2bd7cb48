"""Counter tables against the real clusters: copied value for value, and reruns never double."""

from __future__ import annotations

import datetime
import random

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to
from cassandra import OperationTimedOut
from cassandra.concurrent import execute_concurrent_with_args

from tests.helpers import rows_of
from transforms.connection import CassandraConnection
from transforms.counters import _WriteCountersFn
from transforms.read import ReadFromCassandra
from transforms.retry import RetryPolicy
from transforms.write import WriteToCassandra

HITS = """CREATE TABLE {keyspace}.hits (
    site text, day date, path text, status int,
    views counter, clicks counter, errors counter, "Bytes" counter,
    PRIMARY KEY ((site, day), path, status))"""
COLUMNS = ("site", "day", "path", "status", "views", "clicks", "errors", '"Bytes"')
COUNTERS = ("views", "clicks", "errors", "Bytes")
FAST_RETRIES = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.05)


def create_hits(keyspace, *sessions):
    for session in sessions:
        session.execute(HITS.format(keyspace=keyspace))


def fill_hits(session, keyspace: str, rows: int, seed: int = 7) -> None:
    """``rows`` rows over a few dozen partitions; each counter is left unset in about a quarter
    of the rows, and a few values are negative or zero."""
    chooser = random.Random(seed)
    by_columns: dict[tuple, list] = {}
    for number in range(rows):
        key = (f"site-{number % 7}", datetime.date(2024, 1, 1 + number % 5),
               f"/page/{number}", 200 + number % 3)
        values = {name: chooser.randint(-3, 1000) for name in COUNTERS
                  if chooser.random() > 0.25}
        values = values or {"views": 0}
        by_columns.setdefault(tuple(values), []).append((*values.values(), *key))
    for columns, parameters in by_columns.items():
        increments = ", ".join(f'"{name}" = "{name}" + ?' for name in columns)
        statement = session.prepare(
            f"UPDATE {keyspace}.hits SET {increments} "
            "WHERE site = ? AND day = ? AND path = ? AND status = ?")
        for success, result in execute_concurrent_with_args(session, statement, parameters):
            assert success, result


def copy_counters(hosts, keyspace: str, table: str = "hits", **options) -> dict[str, int]:
    """Copy a counter table through WriteToCassandra; return the write counters."""
    namespace = f"counters-{keyspace}.{table}"
    pipeline = beam.Pipeline()
    read = pipeline | "Read" >> ReadFromCassandra(CassandraConnection(hosts=(hosts[0],)),
                                                  keyspace, table, splits=8)
    written = read.rows | "Write" >> WriteToCassandra(
        CassandraConnection(hosts=(hosts[1],)), keyspace, table, policy=FAST_RETRIES,
        metrics_namespace=namespace, **options)
    assert_that(written.failed_rows, equal_to([]), label="NoFailedRows")
    assert_that(written.downgraded_rows, equal_to([]), label="NoDowngradedRows")
    assert_that(read.failed_ranges, equal_to([]), label="NoFailedRanges")
    result = pipeline.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    counts = dict.fromkeys(("rows_written", "rows_unchanged", "rows_failed", "write_retries"), 0)
    for counter in query["counters"]:
        if counter.key.metric.name in counts:
            counts[counter.key.metric.name] += counter.committed or 0
    return counts


def hits(session, keyspace: str) -> list[tuple]:
    return rows_of(session, keyspace, "hits", COLUMNS)


@pytest.fixture
def copied(keyspace, cassandra_hosts, source_session, target_session):
    """A 300-row counter table on the source, copied once to the target."""
    create_hits(keyspace, source_session, target_session)
    fill_hits(source_session, keyspace, 300)
    counts = copy_counters(cassandra_hosts, keyspace)
    return counts


def test_first_copy_matches_the_source_value_for_value(keyspace, copied, source_session,
                                                       target_session):
    source = hits(source_session, keyspace)
    assert len(source) == 300
    assert any(None in row for row in source), "some counters should be unset"
    assert hits(target_session, keyspace) == source
    assert copied == {"rows_written": 300, "rows_unchanged": 0, "rows_failed": 0,
                      "write_retries": 0}


def test_rerun_changes_nothing(keyspace, copied, cassandra_hosts, source_session,
                               target_session):
    after_first = hits(target_session, keyspace)

    counts = copy_counters(cassandra_hosts, keyspace)

    assert hits(target_session, keyspace) == after_first == hits(source_session, keyspace)
    assert counts == {"rows_written": 0, "rows_unchanged": 300, "rows_failed": 0,
                      "write_retries": 0}


def test_rerun_after_source_increments_catches_up(keyspace, copied, cassandra_hosts,
                                                  source_session, target_session):
    source = hits(source_session, keyspace)
    changed = source[:40]
    increment = source_session.prepare(
        f'UPDATE {keyspace}.hits SET views = views + ?, "Bytes" = "Bytes" + ? '
        "WHERE site = ? AND day = ? AND path = ? AND status = ?")
    for number, row in enumerate(changed):
        source_session.execute(increment, (number + 1, -(number + 1), *row[:4]))

    # A small window of requests in flight and uneven bundles exercise the bounded queue.
    counts = copy_counters(cassandra_hosts, keyspace, batch_size=7, max_in_flight=3)

    assert hits(target_session, keyspace) == hits(source_session, keyspace) != source
    assert counts == {"rows_written": 40, "rows_unchanged": 260, "rows_failed": 0,
                      "write_retries": 0}


def test_higher_target_values_are_brought_down_to_the_source(keyspace, copied, cassandra_hosts,
                                                             source_session, target_session):
    """Someone incremented the target after the copy: the delta is negative and the source wins
    (copying, not merging). A target value where the source has none is left as it is."""
    source = hits(source_session, keyspace)
    bump = target_session.prepare(
        f"UPDATE {keyspace}.hits SET clicks = clicks + 1000 "
        "WHERE site = ? AND day = ? AND path = ? AND status = ?")
    raised = [row for row in source[:60] if row[5] is not None][:10]
    unset = [row for row in source if row[5] is None][:5]
    for row in raised + unset:
        target_session.execute(bump, row[:4])

    counts = copy_counters(cassandra_hosts, keyspace)

    target = {row[:4]: row for row in hits(target_session, keyspace)}
    for row in source:
        expected = row if row not in unset else (*row[:5], 1000, *row[6:])
        assert target[row[:4]] == expected
    assert counts["rows_written"] == len(raised)
    assert counts["rows_unchanged"] == 300 - len(raised)


def test_static_counters_are_reconciled_once_per_partition(keyspace, cassandra_hosts,
                                                           source_session, target_session):
    columns = ("k", "c", "total", "hits")
    for session in (source_session, target_session):
        session.execute(f"CREATE TABLE {keyspace}.visits (k int, c int, total counter static, "
                        "hits counter, PRIMARY KEY (k, c))")
    for k in range(20):
        source_session.execute(f"UPDATE {keyspace}.visits SET total = total + {k + 5} "
                               f"WHERE k = {k}")
        for c in range(k % 4):  # k % 4 == 0: a partition with its static counter only
            source_session.execute(f"UPDATE {keyspace}.visits SET hits = hits + {c + 1} "
                                   f"WHERE k = {k} AND c = {c}")
    source = rows_of(source_session, keyspace, "visits", columns)

    # Whole partitions in one bundle and many requests in flight: its rows run concurrently.
    first = copy_counters(cassandra_hosts, keyspace, "visits")
    second = copy_counters(cassandra_hosts, keyspace, "visits")

    assert rows_of(target_session, keyspace, "visits", columns) == source
    assert first["rows_written"] == len(source) and first["rows_failed"] == 0
    assert second["rows_written"] == 0 and second["rows_unchanged"] == len(source)


class _AppliedButTimedOut:
    """A session whose first counter UPDATEs reach Cassandra and are applied, after which the
    client reports a timeout anyway: what a lost response looks like to the writer."""

    def __init__(self, session, failures: int):
        self._session = session
        self.failures = failures

    def execute_async(self, statement, *args, **kwargs):
        future = self._session.execute_async(statement, *args, **kwargs)
        query = getattr(getattr(statement, "prepared_statement", None), "query_string", "")
        if self.failures and query.startswith("UPDATE"):
            self.failures -= 1
            future.result()
            return _FailedFuture(OperationTimedOut(errors="injected", last_host="target"))
        return future

    def __getattr__(self, name):
        return getattr(self._session, name)


class _FailedFuture:
    def __init__(self, error):
        self._error = error

    def result(self):
        raise self._error


def test_timed_out_update_is_reread_not_resent(keyspace, cassandra_hosts, source_session,
                                               target_session):
    """An UPDATE that timed out may have been applied: the retry reads the target again, finds
    the delta already there and sends nothing, so no increment is applied twice."""
    create_hits(keyspace, source_session, target_session)
    fill_hits(source_session, keyspace, 30)
    source = hits(source_session, keyspace)
    rows = [dict(zip([name.strip('"') for name in COLUMNS], row, strict=True))
            for row in source]
    writer = _WriteCountersFn(CassandraConnection(hosts=(cassandra_hosts[1],)), keyspace, "hits",
                              FAST_RETRIES, max_in_flight=4, metrics_namespace="injected")
    writer.setup()
    try:
        session = _AppliedButTimedOut(writer._session, failures=10)
        writer._session = session
        writer.start_bundle()
        outputs = list(writer.process(rows)) + list(writer.finish_bundle())
    finally:
        writer._session = session._session
        writer.teardown()

    assert session.failures == 0
    assert outputs == []
    assert hits(target_session, keyspace) == source


def test_a_row_that_cannot_be_written_is_a_dead_letter(keyspace, cassandra_hosts,
                                                       target_session):
    create_hits(keyspace, target_session)
    day = datetime.date(2024, 1, 1)
    good = {"site": "a", "day": day, "path": "/", "status": 200, "views": 3, "clicks": None,
            "errors": None, "Bytes": 9}
    bad = {**good, "site": None}
    pipeline = beam.Pipeline()
    written = (pipeline | beam.Create([good, bad])
               | WriteToCassandra(CassandraConnection(hosts=(cassandra_hosts[1],)),
                                          keyspace, "hits", policy=FAST_RETRIES))

    def one_null_key(records):
        (record,) = records
        assert record["table"] == f"{keyspace}.hits"
        assert record["partition_key"] == {"site": None, "day": "2024-01-01"}
        assert record["clustering"] == {"path": "/", "status": 200}
        assert record["error"] == "ValueError" and "site" in record["message"]
        assert record["cql"] is None and record["row"]["views"] == 3

    assert_that(written.failed_rows, one_null_key)
    pipeline.run().wait_until_finish()
    assert hits(target_session, keyspace) == [("a", day, "/", 200, 3, None, None, 9)]
