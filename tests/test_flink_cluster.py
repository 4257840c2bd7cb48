"""The migration on a real Flink cluster: its workers in other processes than the launcher.

``tools.flink_cluster`` starts a standalone Flink 1.19 session cluster on loopback: a
JobManager, two TaskManagers with one slot each and a Python SDK worker pool (EXTERNAL
environment), each its own process, plus the job server that submits to it. The launcher (this
pytest process) only builds, submits and reports: every row is read and written by SDK worker
processes that the pool starts, with the pool's environment, not this one.

Checked here: a 200,000-row copy with parallelism 2, row for row; dead letters written by the
workers where the summary says they are; a password that only the workers hold
(``PASSWORD_ENV`` set in the worker pool's environment, the launcher logging in with its own
``LAUNCHER`` login) and that appears in no log; MAX_ROWS_PER_SECOND held by the run as a whole,
measured from the run's own figures over 30 s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from tests.conftest import HARNESS_SHUTDOWN_RACE, create_keyspace
from tests.helpers import rows_of, run_migration, write_settings
from tools import flink_cluster, sample_data
from tools.flink_runner import FlinkRunnerError

pytestmark = pytest.mark.filterwarnings(HARNESS_SHUTDOWN_RACE)

PARALLELISM = 2
WORKER_PASSWORD = "flink-worker-secret-4711"
LAUNCHER_PASSWORD = "flink-launcher-secret-0815"
PASSWORD_VARIABLE = "FLINK_TEST_TARGET_PASSWORD"
LEDGER_KEYSPACE = "migrator_ledger_flink"


@pytest.fixture(scope="module")
def cluster():
    """JobManager, 2 TaskManagers (1 slot each), SDK worker pool and job server; the workers'
    environment holds the target password, this process's does not."""
    assert PASSWORD_VARIABLE not in os.environ
    local = flink_cluster.LocalFlinkCluster(
        taskmanagers=2, slots=1, worker_environment={PASSWORD_VARIABLE: WORKER_PASSWORD})
    try:
        local.start()
    except FlinkRunnerError as error:
        pytest.fail(f"cannot start the local Flink cluster: {error}")
    yield local
    local.stop()


@pytest.fixture(scope="module")
def guarded_target(local_cluster_factory):
    """A target with a login and a guardrail (values over 2 KiB refused), and two roles: the
    workers' ``migrator`` (all data) and the launcher's ``migrator_launcher`` (reads, and the
    ledger keyspace only)."""
    host = local_cluster_factory(53, auth=True, column_value_size_fail_threshold="2KiB")
    admin = Cluster([host], auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
    session = admin.connect()
    create_keyspace(session, LEDGER_KEYSPACE)
    for role, password in (("migrator", WORKER_PASSWORD),
                           ("migrator_launcher", LAUNCHER_PASSWORD)):
        exists = session.execute("SELECT role FROM system_auth.roles WHERE role = %s",
                                 (role,)).one()
        verb = "ALTER" if exists else "CREATE"
        session.execute(f"{verb} ROLE {role} WITH PASSWORD = '{password}' AND LOGIN = true")
    session.execute("GRANT ALL PERMISSIONS ON ALL KEYSPACES TO migrator")
    session.execute("GRANT SELECT ON ALL KEYSPACES TO migrator_launcher")
    session.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {LEDGER_KEYSPACE} TO migrator_launcher")
    yield host, session
    session.execute(f"DROP KEYSPACE IF EXISTS {LEDGER_KEYSPACE}")
    admin.shutdown()


def _pipeline_args(cluster) -> list[str]:
    args = cluster.pipeline_args(parallelism=PARALLELISM)
    assert "--environment_type=EXTERNAL" in args  # no LOOPBACK: no worker in this process
    return args


def _workers_started(cluster) -> int:
    return cluster.log_paths()["worker-pool"].read_text().count("started SDK worker")


def test_200k_rows_migrate_on_a_flink_cluster(tmp_path, keyspace, cassandra_hosts,
                                              source_session, target_session, cluster):
    sample_data.fill_table(source_session, keyspace, "events", 200_000, "mixed")
    sample_data.create_table(target_session, keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              MAX_WORKERS=PARALLELISM)
    workers_before = _workers_started(cluster)

    code, summary = run_migration(settings, *_pipeline_args(cluster))

    assert code == 0, cluster.log_tail()
    source_rows = rows_of(source_session, keyspace, "events", sample_data.COLUMNS)
    assert len(source_rows) == 200_000
    assert rows_of(target_session, keyspace, "events", sample_data.COLUMNS) == source_rows
    (table,) = summary["tables"]
    # The counters came back from the TaskManagers through the runner ...
    assert (table["rows_read"], table["rows_written"], table["rows_failed"]) == (
        200_000, 200_000, 0)
    # ... and the workers recorded every work item in the ledger.
    assert table["work_items_done"] == table["work_items_total"] > 1
    assert table["run_rows_written"] == 200_000
    # The pool started SDK workers (other processes) for this job.
    assert _workers_started(cluster) >= workers_before + PARALLELISM


@pytest.fixture
def target_login(tmp_path):
    """TARGET settings: the workers log in with the password only they hold (PASSWORD_ENV set
    in the worker pool's environment); the launcher with its own login, from a file."""
    assert PASSWORD_VARIABLE not in os.environ  # only the worker pool's environment has it
    secret = tmp_path / "launcher.secret"
    secret.write_text(LAUNCHER_PASSWORD + "\n")
    return {"USERNAME": "migrator", "PASSWORD_ENV": PASSWORD_VARIABLE,
            "LAUNCHER": {"USERNAME": "migrator_launcher", "PASSWORD_FILE": str(secret)}}


def _assert_no_password_logged(tmp_path: Path, cluster) -> None:
    """No password in the launcher's log, the summary, or any cluster process's log."""
    texts = [path.read_text(errors="replace") for path in tmp_path.rglob("*")
             if path.is_file() and not path.name.endswith(".secret")]
    texts += [path.read_text(errors="replace") for path in cluster.log_paths().values()]
    assert any("migrator" in text for text in texts)  # the logs were read
    for secret in (WORKER_PASSWORD, LAUNCHER_PASSWORD):
        assert not any(secret in text for text in texts)


def test_dead_letters_written_by_the_workers_are_where_the_summary_says(
        tmp_path, keyspace, cassandra_hosts, source_session, guarded_target, cluster,
        target_login):
    host, admin = guarded_target
    create_keyspace(admin, keyspace)
    try:
        sample_data.fill_table(source_session, keyspace, "guarded", 2_000, "mixed")
        sample_data.create_table(admin, keyspace, "guarded")
        bad_accounts = range(0, 200, 10)
        for account in bad_accounts:
            source_session.execute(f"UPDATE {keyspace}.guarded SET note = %s "
                                   "WHERE account_id = %s AND seq = 0", ("x" * 5000, account))
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["guarded"],
                                  TARGET=target_login, LEDGER_KEYSPACE=LEDGER_KEYSPACE)

        code, summary = run_migration(settings, *_pipeline_args(cluster))

        assert code == 1, cluster.log_tail()
        (table,) = summary["tables"]
        assert (table["rows_read"], table["rows_written"], table["rows_failed"]) == (
            2_000, 2_000 - len(bad_accounts), len(bad_accounts))
        # An item with a dead letter is settled as failed in the ledger (replay, or resume).
        assert table["work_items_done"] + table["work_items_failed"] == table["work_items_total"]
        assert 0 < table["work_items_failed"] <= len(bad_accounts)
        files = summary["dead_letter_files"]
        assert files and all(".failed_rows." in path for path in files)
        assert all(Path(path).is_file() and Path(path).is_relative_to(tmp_path)
                   for path in files)
        records = [json.loads(line) for path in files
                   for line in Path(path).read_text().splitlines() if line]
        assert sorted(record["partition_key"]["account_id"] for record in records) == list(
            bad_accounts)
        assert all(record["error"] == "InvalidRequest" and record["row"]["note"] == "x" * 5000
                   for record in records)
        expected = [row for row in rows_of(source_session, keyspace, "guarded",
                                           sample_data.COLUMNS)
                    if not (row[0] in bad_accounts and row[1] == 0)]
        assert rows_of(admin, keyspace, "guarded", sample_data.COLUMNS) == expected
        # The workers' log records reached the TaskManagers' logs.
        assert "clustering {'seq': 0}" in cluster.taskmanager_log()
        _assert_no_password_logged(tmp_path, cluster)
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


RATE = 1_000
RATE_SECONDS = 30


def test_a_rate_limited_run_with_a_password_only_the_workers_hold(
        tmp_path, keyspace, cassandra_hosts, source_session, guarded_target, cluster,
        target_login):
    """MAX_ROWS_PER_SECOND holds for the run as a whole (two writing processes, each with half
    of it); the run logs in with the workers' password and succeeds."""
    host, admin = guarded_target
    create_keyspace(admin, keyspace)
    try:
        rows = RATE * RATE_SECONDS
        sample_data.fill_table(source_session, keyspace, "events", rows, "narrow")
        sample_data.create_table(admin, keyspace, "events")
        # Many small work items, so that the two writers (one per TaskManager, each holding
        # half of the limit) get about the same share of the rows.
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["events"],
                                  TARGET=target_login, LEDGER_KEYSPACE=LEDGER_KEYSPACE,
                                  MAX_WORKERS=PARALLELISM, MAX_ROWS_PER_SECOND=RATE,
                                  SPLITS=1000, BATCH_INSERT_SIZE=20)

        code, summary = run_migration(settings, *_pipeline_args(cluster))

        assert code == 0, cluster.log_tail()
        (table,) = summary["tables"]
        assert table["rows_written"] == rows and table["rows_failed"] == 0
        assert table["work_items_done"] == table["work_items_total"]
        assert rows_of(admin, keyspace, "events", sample_data.COLUMNS) == rows_of(
            source_session, keyspace, "events", sample_data.COLUMNS)
        # The run's own figures: rows written over the time from its first to its last write.
        assert table["seconds"] >= RATE_SECONDS * 0.95
        assert abs(table["rows_per_second"] - RATE) <= RATE * 0.05, table
        _assert_no_password_logged(tmp_path, cluster)
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
