"""What breaks during hours-long runs, on real nodes: the migrator killed and resumed, a target
node killed and restarted, a source node restarted, a table the target cannot take.

The nodes killed here are their own single-node clusters (127.0.0.20 source, 127.0.0.21
target), started durable: batch commit log sync and logged system tables, so a killed node keeps
every write it acknowledged. The 120,000-row source table is filled once for the module.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cassandra.cluster import Cluster, NoHostAvailable

from tests.conftest import create_keyspace
from tests.helpers import dead_letters, rows_of, run_migration, write_settings
from tools import local_cassandra, sample_data

ROWS = 120_000
COLUMNS = sample_data.COLUMNS
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def durable_pair(local_cluster_factory):
    """(source host, source session, target host, target session, keyspace) with the source
    table filled; the target table is emptied by each test."""
    source_host, target_host = local_cluster_factory.many(2, 20, durable=True)
    clusters = [Cluster([host], protocol_version=5) for host in (source_host, target_host)]
    source, target = (cluster.connect() for cluster in clusters)
    keyspace = "resilience"
    for session in (source, target):
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        create_keyspace(session, keyspace)
    sample_data.fill_table(source, keyspace, "events", ROWS, "narrow")
    sample_data.create_table(target, keyspace, "events")
    yield source_host, source, target_host, target, keyspace
    for cluster in clusters:
        cluster.shutdown()


def _settings(tmp_path, pair, **settings):
    source_host, _, target_host, target, keyspace = pair
    target.execute(f"TRUNCATE {keyspace}.events")
    return write_settings(tmp_path, source_host, target_host, keyspace, ["events"],
                          LEDGER_KEYSPACE="resilience_ledger", SPLITS=64, **settings)


def _migrate_in_background(settings: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.migrate", "--config",
                             str(settings), *args], cwd=PROJECT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _same(pair) -> bool:
    _, source, _, target, keyspace = pair
    return rows_of(target, keyspace, "events", COLUMNS) == rows_of(source, keyspace, "events",
                                                                    COLUMNS)


def _items_done(target) -> int:
    return sum(row[0] == "done" for row in target.execute(
        "SELECT status FROM resilience_ledger.work_items"))


def test_a_killed_migration_resumes_where_it_stopped(tmp_path, durable_pair):
    _, _, _, target, _ = durable_pair
    target.execute("DROP KEYSPACE IF EXISTS resilience_ledger")
    settings = _settings(tmp_path, durable_pair, MAX_ROWS_PER_SECOND=10_000)
    process = _migrate_in_background(settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if target.cluster.metadata.keyspaces.get("resilience_ledger") is not None:
            try:
                if _items_done(target) >= 34:  # of 64 work items: about half of the table
                    break
            except Exception:  # noqa: BLE001 - the ledger table is being created
                pass
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the migration ended before it was killed"

    code, summary = run_migration(settings, "--resume")

    assert code == 0, summary
    (table,) = summary["tables"]
    assert table["work_items_done"] == table["work_items_total"] == 64
    assert 0 < table["rows_read"] <= 0.6 * ROWS  # only what the first run had not finished
    assert table["run_rows_written"] == table["run_rows_read"] == ROWS  # each row counted once
    assert summary["run_id"] == target.execute(
        "SELECT run_id FROM resilience_ledger.runs").one()[0]
    assert _same(durable_pair)


def _restart_during_run(tmp_path, pair, address: str, how: int) -> tuple[int, dict]:
    """Run the migration, take the node at ``address`` down with ``how`` a few seconds in,
    start it again 20 s later; return the migration's exit code and summary."""
    settings = _settings(tmp_path, pair, MAX_ROWS_PER_SECOND=10_000)
    outcome = {}

    def migrate():
        outcome["result"] = run_migration(settings)

    runner = threading.Thread(target=migrate)
    runner.start()
    time.sleep(5)
    assert runner.is_alive(), "the migration ended before the node went down"
    local_cassandra.kill(address, how)
    time.sleep(20)
    local_cassandra.restart(address)
    runner.join(timeout=600)
    assert not runner.is_alive()
    for session in (pair[1], pair[3]):
        _answering(session)
    return outcome["result"]


def _answering(session, seconds: float = 90) -> None:
    """Wait until this test's own session reaches its node again: the driver reconnects to a
    restarted node on a growing backoff, which may end after the migration does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            session.execute("SELECT release_version FROM system.local")
            return
        except NoHostAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_a_target_node_killed_and_restarted_costs_time_not_rows(tmp_path, durable_pair):
    code, summary = _restart_during_run(tmp_path, durable_pair, durable_pair[2], signal.SIGKILL)

    assert code == 0, summary
    (table,) = summary["tables"]
    assert (table["rows_written"], table["rows_failed"]) == (ROWS, 0)
    assert table["outage_seconds"] >= 10
    assert dead_letters(Path(tmp_path / "migrator_settings.yaml"), "failed_rows") == []
    assert _same(durable_pair)


def test_a_source_node_restarted_costs_time_not_rows(tmp_path, durable_pair):
    code, summary = _restart_during_run(tmp_path, durable_pair, durable_pair[0], signal.SIGTERM)

    assert code == 0, summary
    (table,) = summary["tables"]
    assert (table["rows_read"], table["rows_written"], table["ranges_failed"]) == (ROWS, ROWS, 0)
    assert table["outage_seconds"] >= 10
    assert _same(durable_pair)


def test_a_table_the_target_cannot_take_stops_early_and_resumes_when_fixed(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, rf3_keyspace):
    # Replication factor 3 on a one-node target and no fallback: every write is Unavailable.
    target_keyspace = rf3_keyspace(target_session)
    sample_data.fill_table(source_session, keyspace, "events", 100_000, "narrow")
    sample_data.create_table(target_session, target_keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              target_keyspace=target_keyspace, FALLBACK_CONSISTENCY=None,
                              MAX_FAILED_ROWS=1000)
    started = time.monotonic()
    code, summary = run_migration(settings)
    assert time.monotonic() - started < 60
    assert code == 1
    (table,) = summary["tables"]
    assert table["status"] == "stopped" and "MAX_FAILED_ROWS" in table["stopped"]
    assert 1000 < table["rows_failed"] < 5000
    assert table["rows_failed"] == table["dead_letter_records"] == len(
        dead_letters(settings, "failed_rows"))
    assert table["work_items_done"] < table["work_items_total"]
    log = (tmp_path / "migrator.log").read_text()
    assert f"--resume {summary['run_id']}" in log

    target_session.execute(f"ALTER KEYSPACE {target_keyspace} WITH replication = "
                           "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    code, summary = run_migration(settings, "--resume")

    assert code == 0, summary
    (table,) = summary["tables"]
    assert table["work_items_done"] == table["work_items_total"]
    assert table["run_rows_written"] == 100_000 and table["run_rows_failed"] == 0
    assert rows_of(target_session, target_keyspace, "events", COLUMNS) == rows_of(
        source_session, keyspace, "events", COLUMNS)

