"""A real three-node cluster (one ring on 127.0.0.5-7): work items follow ring ownership, and a
migration from it reads every row exactly once."""

from __future__ import annotations

import struct
import time

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import create_keyspace
from tests.helpers import rows_of, run_migration, write_settings
from tools import local_cassandra, sample_data
from transforms import CassandraConnection, ReadFromCassandra, token_ranges
from transforms.read import _GenerateWorkItemsFn


@pytest.fixture(scope="module")
def ring():
    nodes = local_cassandra.plan_nodes(3, "ring", auth=False, tls=False, heap="512M",
                                       num_tokens=1, extra={}, first=5)
    report = local_cassandra.start(nodes)
    started = [node["address"] for node in report if node["state"] != "reused"]
    connection = CassandraConnection(tuple(node.address for node in nodes))
    cluster = connection.new_cluster()
    session = cluster.connect()
    # The nodes' system.peers tables can lag the gossip the launcher waited for: wait until a
    # client sees the whole ring before anything depends on it.
    deadline = time.monotonic() + 120
    while len(cluster.metadata.token_map.ring) < 3 or len(cluster.metadata.all_hosts()) < 3:
        assert time.monotonic() < deadline, "the driver never saw all three nodes"
        time.sleep(1)
        cluster.refresh_nodes()
    yield connection, session
    cluster.shutdown()
    if started:
        local_cassandra.stop(started)


def test_work_items_lie_on_one_replica_set_and_cover_the_ring(ring, keyspace):
    connection, session = ring
    create_keyspace(session, keyspace, replication_factor=2)
    metadata = session.cluster.metadata
    assert len(metadata.all_hosts()) == 3
    generate = _GenerateWorkItemsFn(connection, keyspace, 30, None)
    generate.setup()
    items = [item.token_range for item in generate.process("any")]
    generate.teardown()
    token_map = metadata.token_map
    ring_tokens = sorted(token.value for token in token_map.ring)
    assert len(ring_tokens) == 3
    for item in items:
        assert not any(item.start < token < item.end for token in ring_tokens)
        owners = {host.endpoint.address for host in
                  token_map.get_replicas(keyspace, token_map.token_class(item.end))}
        assert set(item.replicas) == owners and len(owners) == 2
    assert 27 <= len(items) <= 33
    session.execute(f"DROP KEYSPACE {keyspace}")


def test_migration_from_a_three_node_cluster(ring, tmp_path, keyspace, cassandra_hosts,
                                             target_session):
    connection, session = ring
    create_keyspace(session, keyspace, replication_factor=2)
    try:
        sample_data.fill_table(session, keyspace, "events", 5_000, "mixed")
        sample_data.create_table(target_session, keyspace, "events")
        settings = write_settings(tmp_path, connection.hosts[0], cassandra_hosts[1], keyspace,
                                  ["events"], SPLITS=24)
        code, summary = run_migration(settings)
        assert code == 0
        assert summary["tables"][0]["rows_read"] == 5_000
        assert rows_of(target_session, keyspace, "events", sample_data.COLUMNS) == rows_of(
            session, keyspace, "events", sample_data.COLUMNS)
        with test_pipeline.TestPipeline() as pipeline:
            read = pipeline | ReadFromCassandra(connection, keyspace, "events", splits=7,
                                                columns=("account_id", "seq"))
            keys = read.rows | beam.Map(lambda row: (row["account_id"], row["seq"]))
            assert_that(keys, equal_to([row[:2] for row in rows_of(
                session, keyspace, "events", ("account_id", "seq"))]))
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_replica_sets_of_routing_keys_are_the_drivers(ring, keyspace):
    _, session = ring
    create_keyspace(session, keyspace, replication_factor=2)
    try:
        token_map = session.cluster.metadata.token_map
        replica_sets = token_ranges.ReplicaSets(token_map, keyspace)
        keys = [struct.pack(">i", number) for number in range(-1000, 1000)] + [b"", b"\0" * 16]
        seen = set()
        for key in keys:
            expected = frozenset(token_map.get_replicas(keyspace,
                                                        token_map.token_class.from_key(key)))
            assert replica_sets.of(key) == expected, key
            seen.add(expected)
        assert len(seen) == 3 and all(len(hosts) == 2 for hosts in seen)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
