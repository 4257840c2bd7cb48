"""The public transforms used on their own, as a Beam user would, against the real clusters."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.helpers import rows_of
from transforms import (
    BatchMode,
    CassandraConnection,
    ReadFromCassandra,
    RetryPolicy,
    WriteToCassandra,
)


def test_read_emits_every_row_once_as_dicts(keyspace, cassandra_hosts, source_session):
    source_session.execute(f"CREATE TABLE {keyspace}.kv (k int, c int, v text, "
                           "PRIMARY KEY (k, c))")
    insert = source_session.prepare(f"INSERT INTO {keyspace}.kv (k, c, v) VALUES (?, ?, ?)")
    expected = [{"k": k, "c": c, "v": f"{k}-{c}"} for k in range(40) for c in range(k % 7)]
    for row in expected:
        source_session.execute(insert, (row["k"], row["c"], row["v"]))
    with test_pipeline.TestPipeline() as pipeline:
        read = pipeline | ReadFromCassandra(CassandraConnection((cassandra_hosts[0],)), keyspace,
                                            "kv", splits=13, fetch_size=7)
        assert_that(read.rows, equal_to(expected))
        assert_that(read.failed_ranges, equal_to([]), label="no failed ranges")


def test_write_dead_letters_bad_rows_and_writes_the_rest(keyspace, cassandra_hosts,
                                                         target_session):
    target_session.execute(f"CREATE TABLE {keyspace}.kv (k int, c int, v text, "
                           "PRIMARY KEY (k, c))")
    good = [{"k": k, "c": 0, "v": str(k)} for k in range(30)]
    bad = [{"k": None, "c": 1, "v": "null key"}, {"k": 99, "c": 1, "v": 12345}]
    with test_pipeline.TestPipeline() as pipeline:
        written = (pipeline
                   | beam.Create(good[:15] + bad + good[15:])
                   | WriteToCassandra(CassandraConnection((cassandra_hosts[1],)), keyspace, "kv",
                                      batch_size=8, batch_mode=BatchMode.BUNDLE,
                                      policy=RetryPolicy(retries=1)))
        # The driver refuses both while binding (a null key; an int for a text column).
        assert_that(written.failed_rows | beam.Map(lambda r: (r["row"]["k"], r["row"]["v"],
                                                              r["attempts"])),
                    equal_to([(None, "null key", 0), (99, 12345, 0)]))
    assert rows_of(target_session, keyspace, "kv", ("k", "c", "v")) == [
        (row["k"], row["c"], row["v"]) for row in good]


def test_transforms_show_what_they_will_do_but_never_a_password():
    from apache_beam.transforms.display import DisplayData

    from transforms import CellOptions

    connection = CassandraConnection(("10.0.0.1",), username="app", password="hunter2")
    read = ReadFromCassandra(connection, "shop", "orders", splits=32, fetch_size=500,
                             cells=CellOptions(writetime=True, ttl=True))
    write = WriteToCassandra(connection, "shop_v2", "orders", batch_mode=BatchMode.PARTITION,
                             max_rows_per_second=1000, writing_processes=4)
    shown = {}
    for transform in (read, write):
        for item in DisplayData.create_from(transform).items:
            shown[(type(transform).__name__, item.key)] = item.value
    assert shown[("ReadFromCassandra", "table")] == "shop.orders"
    assert shown[("ReadFromCassandra", "fetch_size")] == 500
    assert shown[("ReadFromCassandra", "cells")] == "values with writetime and ttl"
    assert shown[("WriteToCassandra", "batch_mode")] == "PARTITION"
    assert shown[("WriteToCassandra", "hosts")] == "10.0.0.1:9042"
    assert shown[("WriteToCassandra", "max_rows_per_second")] == 1000
    assert shown[("WriteToCassandra", "writing_processes")] == 4
    assert not any("hunter2" in str(value) for value in shown.values())
