"""``cassandra-migrate plan`` against the real clusters: it prints the table, its token ranges
and its estimate, and writes nothing to either cluster (not even with CREATE_TARGET_TABLES or
a ledger to create)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_settings
from tools import sample_data
from tools.local_cassandra import launcher
from transforms.read import work_items_of

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3_000


def nodetool(address: str, *args: str) -> None:
    """nodetool of a node that tools.local_cassandra started (JMX on 127.0.0.1, per node)."""
    port = launcher.JMX_BASE_PORT + int(address.rsplit(".", 1)[1])
    completed = subprocess.run(
        [launcher._java(), *launcher.JVM17_FLAGS, "-cp", f"{launcher.lib_dir()}/*",
         "org.apache.cassandra.tools.NodeTool", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]


def schema_and_rows(session, keyspace: str) -> tuple:
    session.cluster.refresh_schema_metadata()
    metadata = session.cluster.metadata
    tables = sorted(metadata.keyspaces[keyspace].tables)
    counts = {table: session.execute(f"SELECT count(*) FROM {keyspace}.{table}").one()[0]
              for table in tables}
    return sorted(metadata.keyspaces), tables, counts


def test_plan_prints_table_ranges_and_estimate_and_writes_nothing(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    source_host = cassandra_hosts[0]
    sample_data.fill_table(source_session, keyspace, "events", ROWS, "mixed")
    partitions = len(list(sample_data.partition_sizes(ROWS, "mixed")))
    nodetool(source_host, "flush", keyspace, "events")
    nodetool(source_host, "refreshsizeestimates")
    recorded = sum(row[0] for row in source_session.execute(
                       "SELECT partitions_count FROM system.size_estimates WHERE "
                       f"keyspace_name = '{keyspace}' AND table_name = 'events'"))
    ledger = f"{keyspace}_ledger"
    settings = write_settings(tmp_path, source_host, cassandra_hosts[1], keyspace, ["events"],
                              CREATE_TARGET_TABLES=True, SPLITS=7, LEDGER_KEYSPACE=ledger)
    before = (schema_and_rows(source_session, keyspace), schema_and_rows(target_session,
                                                                          keyspace))

    completed = subprocess.run([sys.executable, "-m", "pipelines.cli", "plan", "--config",
                                str(settings)], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)

    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert f"{keyspace}.events -> {keyspace}.events" in out
    expected_ranges = len(work_items_of(source_session.cluster.metadata, keyspace, 7, None))
    assert f"reads:       {expected_ranges:,} token ranges covering the ring (SPLITS 7)" in out
    estimate = re.search(r"estimate: +([\d,]+) partitions, about ([\d,]+) rows, ([\d.,]+) MB",
                         out)
    assert estimate, out
    printed_partitions, printed_rows = (int(estimate.group(i).replace(",", "")) for i in (1, 2))
    assert printed_partitions == recorded  # what system.size_estimates holds
    # Cassandra's count is a cardinality estimate (384 for 348 partitions here): near the truth.
    assert abs(printed_partitions - partitions) <= 0.25 * partitions
    assert abs(printed_rows - ROWS) <= 0.25 * ROWS
    assert f"creates:     CREATE TABLE IF NOT EXISTS {keyspace}.events" in out
    assert f"ledger:      {ledger} does not exist on the target: a run would create it" in out
    # Nothing was written: both clusters as before, no target table, no ledger keyspace.
    after = (schema_and_rows(source_session, keyspace), schema_and_rows(target_session,
                                                                         keyspace))
    assert after == before
    assert "events" not in target_session.cluster.metadata.keyspaces[keyspace].tables
    assert ledger not in target_session.cluster.metadata.keyspaces
    assert not (tmp_path / "migrator.log").exists() and not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "failed_rows").exists()
