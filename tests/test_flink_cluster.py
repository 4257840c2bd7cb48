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


ROWS = 200_000
RATE = 4_000  # rows/s for the run: 200,000 rows take 50 s, well within what the cluster can do
BAD_ACCOUNTS = range(0, 200, 10)


def test_a_migration_on_a_flink_cluster_with_dead_letters_a_workers_password_and_a_rate_limit(
        tmp_path, keyspace, cassandra_hosts, source_session, guarded_target, cluster,
        target_login):
    """One job (each job costs Flink a round of SDK worker starts): 200,000 rows with
    parallelism 2, row for row; a second table with rows over the target's guardrail, whose
    dead letters the workers write where the summary says; the target's password only in the
    workers' environment; MAX_ROWS_PER_SECOND held by the run as a whole over 30 s."""
    host, admin = guarded_target
    create_keyspace(admin, keyspace)
    try:
        sample_data.fill_table(source_session, keyspace, "events", ROWS, "mixed")
        sample_data.fill_table(source_session, keyspace, "guarded", 2_000, "mixed")
        for account in BAD_ACCOUNTS:
            source_session.execute(f"UPDATE {keyspace}.guarded SET note = %s "
                                   "WHERE account_id = %s AND seq = 0", ("x" * 5000, account))
        for table in ("events", "guarded"):
            sample_data.create_table(admin, keyspace, table)
        # Many small work items, so that the two writers (one per TaskManager) get about the
        # same share of the rows.
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace,
                                  ["events", "guarded"], TARGET=target_login,
                                  LEDGER_KEYSPACE=LEDGER_KEYSPACE, MAX_WORKERS=PARALLELISM,
                                  MAX_ROWS_PER_SECOND=RATE, SPLITS=400)
        workers_before = _workers_started(cluster)

        code, summary = run_migration(settings, *_pipeline_args(cluster))

        assert code == 1, cluster.log_tail()  # the guarded table's rows over the guardrail
        tables = {table["source"].split(".")[1]: table for table in summary["tables"]}
        events, guarded = tables["events"], tables["guarded"]
        # 200,000 rows, row for row; the counters came back from the TaskManagers through the
        # runner, and the workers recorded every work item in the ledger.
        source_rows = rows_of(source_session, keyspace, "events", sample_data.COLUMNS)
        assert len(source_rows) == ROWS
        assert rows_of(admin, keyspace, "events", sample_data.COLUMNS) == source_rows
        assert (events["rows_read"], events["rows_written"], events["rows_failed"]) == (
            ROWS, ROWS, 0)
        assert events["status"] == "success"
        assert events["work_items_done"] == events["work_items_total"] > 1
        assert events["run_rows_written"] == ROWS
        # The pool started SDK workers (other processes) for this job.
        assert _workers_started(cluster) >= workers_before + PARALLELISM

        # Dead letters, written by the workers where the summary says they are.
        assert (guarded["rows_read"], guarded["rows_written"], guarded["rows_failed"]) == (
            2_000, 2_000 - len(BAD_ACCOUNTS), len(BAD_ACCOUNTS))
        # An item with a dead letter is settled as failed in the ledger (replay, or resume).
        assert (guarded["work_items_done"] + guarded["work_items_failed"]
                == guarded["work_items_total"])
        assert 0 < guarded["work_items_failed"] <= len(BAD_ACCOUNTS)
        # Every file the summary names is there (a loaded machine may also leave rows written
        # at the fallback consistency: <table>.downgraded_rows.jsonl).
        files = summary["dead_letter_files"]
        assert all(Path(path).is_file() and Path(path).is_relative_to(tmp_path)
                   for path in files)
        failed = [path for path in files if ".failed_rows." in path]
        assert failed and all(".guarded." in path for path in failed)
        records = [json.loads(line) for path in failed
                   for line in Path(path).read_text().splitlines() if line]
        assert sorted(record["partition_key"]["account_id"] for record in records) == list(
            BAD_ACCOUNTS)
        assert all(record["error"] == "InvalidRequest" and record["row"]["note"] == "x" * 5000
                   for record in records)
        expected = [row for row in rows_of(source_session, keyspace, "guarded",
                                           sample_data.COLUMNS)
                    if not (row[0] in BAD_ACCOUNTS and row[1] == 0)]
        assert rows_of(admin, keyspace, "guarded", sample_data.COLUMNS) == expected
        # The workers' log records reached the TaskManagers' logs.
        assert "clustering {'seq': 0}" in cluster.taskmanager_log()

        # The rate, from the run's own figures: every row written over the time from the big
        # table's first read to its last write (the small table's rows share the limit
        # meanwhile), within 5 % of the limit. The two writers' shares of the work items
        # differ (they are spread by a hash); the one that runs out of work first stops
        # beating in the ledger, and the other takes the whole limit.
        written = events["rows_written"] + guarded["rows_written"]
        rate = written / events["seconds"]
        print(f"rate: {rate:,.1f} rows/s for a limit of {RATE:,} ({written:,} rows in "
              f"{events['seconds']} s)")
        assert events["seconds"] >= 30
        assert RATE * 0.95 <= rate <= RATE * 1.05, (rate, written, events)

        _assert_no_password_logged(tmp_path, cluster)
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
