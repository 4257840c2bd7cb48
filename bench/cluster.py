"""Driver helpers shared by the benchmark programs: connect, count a table, write a result.

Kept apart from ``transforms.connection`` on purpose: the contenders other than the pipeline
must not borrow the pipeline's code, and the bench's own bookkeeping (filling, truncating,
counting) should not depend on what is being measured.
"""

from __future__ import annotations

import json
import os
import time

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

# Murmur3's token space. The lowest token is never assigned to a key, so "> LOWEST" selects all.
LOWEST_TOKEN, HIGHEST_TOKEN = -(2**63), 2**63 - 1
COUNT_SLICES = 256


def connect(host: str, port: int = 9042, request_timeout: float = 120.0,
            consistency: int = ConsistencyLevel.LOCAL_QUORUM, protocol_version: int | None = None):
    """A session on one cluster with token-aware routing and a generous timeout.

    ``protocol_version`` None lets the driver negotiate (v5 with Cassandra 5.0).
    """
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        request_timeout=request_timeout, consistency_level=consistency)
    options = {"protocol_version": protocol_version} if protocol_version else {}
    cluster = Cluster([host], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      **options)
    return cluster.connect()


def create_keyspace(session, keyspace: str) -> None:
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")


def count_rows(session, keyspace: str, table: str) -> int:
    """Rows in a table, counted by the server in token-range slices read at ALL.

    One ``count(*)`` over a whole big table times out; slices of the ring are cheap and
    together cover it with no gap and no overlap.
    """
    metadata = session.cluster.metadata.keyspaces[keyspace].tables[table]
    key = ", ".join(f'"{column.name}"' for column in metadata.partition_key)
    statement = session.prepare(f'SELECT count(*) FROM "{keyspace}"."{table}" '
                                f"WHERE token({key}) > ? AND token({key}) <= ?")
    statement.consistency_level = ConsistencyLevel.ALL
    width = HIGHEST_TOKEN - LOWEST_TOKEN
    bounds = [LOWEST_TOKEN + width * index // COUNT_SLICES for index in range(COUNT_SLICES + 1)]
    slices = list(zip(bounds, bounds[1:], strict=False))
    results = execute_concurrent_with_args(session, statement, slices, concurrency=16,
                                           raise_on_first_error=True)
    return sum(result.result_or_exc.one()[0] for result in results)


def vector_columns(session) -> list[str]:
    """``keyspace.table.column`` of every vector column of the cluster (dsbulk 1.10 cannot run
    against a cluster with any)."""
    rows = session.execute("SELECT keyspace_name, table_name, column_name, type "
                           "FROM system_schema.columns")
    return sorted(f"{row.keyspace_name}.{row.table_name}.{row.column_name}" for row in rows
                  if "vector<" in row.type)


def settle(session, keyspace: str, quiet_seconds: float = 5.0, timeout: float = 900.0) -> float:
    """Wait until the node has run no compaction or other SSTable task on ``keyspace`` for
    ``quiet_seconds`` (``system_views.sstable_tasks``), at most ``timeout``; return the seconds
    waited. A table just filled is still being compacted: contenders measured meanwhile would
    share the node with that work, the first ones more than the last."""
    started = last_busy = now = time.monotonic()
    while now - last_busy < quiet_seconds and now - started <= timeout:
        tasks = session.execute("SELECT keyspace_name FROM system_views.sstable_tasks")
        if any(task.keyspace_name == keyspace for task in tasks):
            last_busy = time.monotonic()
        time.sleep(0.5)
        now = time.monotonic()
    return now - started


def write_result(path: str, **facts) -> None:
    """The facts a contender reports to ``bench.run`` (its timed seconds, rows written...)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(facts, handle)
    os.replace(temporary, path)
