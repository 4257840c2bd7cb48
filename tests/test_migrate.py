"""The migration against the real local clusters: source 127.0.0.1 -> target 127.0.0.2."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from pipelines import migrate
from tests.conftest import create_keyspace
from tests.helpers import dead_letters, rows_of, run_migration, write_settings
from tools import sample_data
from transforms import CassandraConnection, TlsOptions

COLUMNS = sample_data.COLUMNS
PROJECT = Path(__file__).resolve().parents[1]


def test_100k_rows_with_wide_partitions_move_row_for_row(tmp_path, keyspace, cassandra_hosts,
                                                         source_session, target_session):
    written = sample_data.fill_table(source_session, keyspace, "events", 100_000, "mixed")
    sample_data.create_table(target_session, keyspace, "events")
    sizes = list(sample_data.partition_sizes(100_000, "mixed"))
    assert written == 100_000 and max(sizes) == 1000 and len(sizes) > 10_000
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"])

    code, summary = run_migration(settings)

    assert code == 0
    source_rows = rows_of(source_session, keyspace, "events", COLUMNS)
    assert len(source_rows) == 100_000
    assert rows_of(target_session, keyspace, "events", COLUMNS) == source_rows
    (table,) = summary["tables"]
    assert summary["status"] == table["status"] == "success"
    counts = (table["rows_read"], table["rows_written"], table["rows_failed"])
    assert counts == (100_000, 100_000, 0)
    assert table["source"] == table["target"] == f"{keyspace}.events"
    assert dead_letters(settings, "failed_rows") == []


def test_nulls_are_not_copied_as_tombstones(tmp_path, keyspace, cassandra_hosts, source_session,
                                            target_session):
    sample_data.fill_table(source_session, keyspace, "events", 500, "narrow")
    sample_data.create_table(target_session, keyspace, "events")
    # A value already on the target in a column that is null on the source must survive.
    null_keys = [row.account_id for row in source_session.execute(
        f"SELECT account_id, note FROM {keyspace}.events") if row.note is None]
    assert null_keys
    target_session.execute(f"INSERT INTO {keyspace}.events (account_id, seq, note) "
                           f"VALUES ({null_keys[0]}, 0, 'kept')")
    code, _ = run_migration(write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"]))
    assert code == 0
    note = target_session.execute(f"SELECT note FROM {keyspace}.events WHERE account_id = "
                                  f"{null_keys[0]} AND seq = 0").one().note
    assert note == "kept"


def test_listed_partitions_only_and_renamed_target(tmp_path, keyspace, cassandra_hosts,
                                                   source_session, target_session):
    sample_data.fill_table(source_session, keyspace, "events", 2_000, "mixed")
    sample_data.create_table(target_session, keyspace, "events_copy")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, [
        {"SOURCE": "events", "TARGET": "events_copy", "PARTITIONS": [3, [5], 8]}])
    code, summary = run_migration(settings)
    assert code == 0
    expected = [row for row in rows_of(source_session, keyspace, "events", COLUMNS)
                if row[0] in (3, 5, 8)]
    assert expected and rows_of(target_session, keyspace, "events_copy", COLUMNS) == expected
    assert summary["tables"][0]["rows_written"] == len(expected)


def test_quorum_on_an_impossible_replication_downgrades_to_one(tmp_path, cassandra_hosts,
                                                               source_session, target_session,
                                                               keyspace, rf3_keyspace):
    target_keyspace = rf3_keyspace(target_session)
    sample_data.fill_table(source_session, keyspace, "events", 300, "mixed")
    sample_data.create_table(target_session, target_keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              target_keyspace=target_keyspace)
    code, summary = run_migration(settings)
    assert code == 0
    (table,) = summary["tables"]
    assert table["rows_written"] == 300 and table["rows_failed"] == 0
    assert table["consistency_downgrades"] == 300
    downgraded = dead_letters(settings, "downgraded_rows")
    assert len(downgraded) == 300
    assert {record["consistency"] for record in downgraded} == {"ONE"}
    assert rows_of(target_session, target_keyspace, "events", COLUMNS) == rows_of(
        source_session, keyspace, "events", COLUMNS)
    log = (tmp_path / "migrator.log").read_text()
    assert "Unavailable at QUORUM; downgrading to ONE" in log

    # Without a fallback level the same run writes nothing and dead-letters every row.
    target_session.execute(f"TRUNCATE {target_keyspace}.events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              target_keyspace=target_keyspace, FALLBACK_CONSISTENCY=None,
                              RETRY_ATTEMPTS=1, FAILED_ROWS_DIR=str(tmp_path / "second"))
    code, summary = run_migration(settings)
    assert code == 1
    (table,) = summary["tables"]
    assert summary["status"] == table["status"] == "failed"
    assert (table["rows_written"], table["rows_failed"]) == (0, 300)
    failed = dead_letters(settings, "failed_rows")
    assert len(failed) == 300
    assert {record["error"] for record in failed} == {"Unavailable"}
    keys = {(record["partition_key"]["account_id"], record["clustering"]["seq"])
            for record in failed}
    assert keys == {row[:2] for row in rows_of(source_session, keyspace, "events", COLUMNS)}
    assert rows_of(target_session, target_keyspace, "events", COLUMNS) == []

    # A replay while the cause lasts fails again: every row in a new file beside the first.
    (failed_file,) = (tmp_path / "second").glob("*/*.failed_rows*.jsonl")
    assert migrate.run(["replay", str(failed_file), "--config", str(settings)]) == 1
    (again,) = (tmp_path / "second").glob("*/*.replay-*.jsonl")
    assert len(again.read_text().splitlines()) == 300
    again.unlink()
    # Once the keyspace can take QUORUM writes, a replay of the dead letters writes them,
    # with their source writetimes.
    target_session.execute(f"ALTER KEYSPACE {target_keyspace} WITH replication = "
                           "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    assert migrate.run(["replay", str(failed_file), "--config", str(settings)]) == 0
    assert rows_of(target_session, target_keyspace, "events", COLUMNS) == rows_of(
        source_session, keyspace, "events", COLUMNS)
    writetimes = {tuple(row) for row in source_session.execute(
        f"SELECT account_id, seq, writetime(kind) FROM {keyspace}.events")}
    assert {tuple(row) for row in target_session.execute(
        f"SELECT account_id, seq, writetime(kind) FROM {target_keyspace}.events")} == writetimes
    assert not list((tmp_path / "second").glob("*/*.replay-*.jsonl"))



def test_reads_downgraded_to_one_are_counted_and_their_ranges_listed(
        tmp_path, cassandra_hosts, source_session, target_session, keyspace, rf3_keyspace):
    # LOCAL_QUORUM reads of an RF 3 keyspace on one node are Unavailable: every page is read
    # at ONE, where a lagging replica could have left rows out.
    source_keyspace = rf3_keyspace(source_session)
    sample_data.fill_table(source_session, source_keyspace, "events", 500, "mixed")
    sample_data.create_table(target_session, keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              SOURCE={"KEYSPACE": source_keyspace}, SPLITS=6)
    code, summary = run_migration(settings)
    assert code == 0, summary
    (table,) = summary["tables"]
    assert table["rows_written"] == 500
    downgraded = dead_letters(settings, "downgraded_ranges")
    assert table["ranges_downgraded"] == len(downgraded) >= 6
    assert {record["consistency"] for record in downgraded} == {"ONE"}
    assert all(record["pages_downgraded"] >= 1 and record["token_range"]
               for record in downgraded)
    assert "read at the fallback consistency" in (tmp_path / "migrator.log").read_text()
    assert rows_of(target_session, keyspace, "events", COLUMNS) == rows_of(
        source_session, source_keyspace, "events", COLUMNS)



@pytest.fixture(scope="module")
def guarded_target(local_cluster_factory):
    """A target cluster that refuses values over 2 KiB (a guardrail), with an ordinary login:
    guardrails do not apply to superusers."""
    host = local_cluster_factory(3, auth=True, column_value_size_fail_threshold="2KiB")
    admin = Cluster([host], auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
    session = admin.connect()
    # A node left up by an earlier run may know the role with another password; Cassandra
    # refuses a second password change within 5 s, so the role is altered only if it exists.
    exists = session.execute("SELECT role FROM system_auth.roles WHERE role = 'migrator'").one()
    verb = "ALTER" if exists else "CREATE"
    session.execute(f"{verb} ROLE migrator WITH PASSWORD = 'migrator-secret' AND LOGIN = true")
    session.execute("GRANT ALL PERMISSIONS ON ALL KEYSPACES TO migrator")
    yield host, session
    admin.shutdown()


def test_a_row_the_target_rejects_goes_to_the_dead_letter_file(tmp_path, keyspace,
                                                               cassandra_hosts, source_session,
                                                               guarded_target, monkeypatch):
    host, admin = guarded_target
    create_keyspace(admin, keyspace)
    try:
        sample_data.fill_table(source_session, keyspace, "events", 1_000, "mixed")
        sample_data.create_table(admin, keyspace, "events")
        source_session.execute(f"UPDATE {keyspace}.events SET note = '{'x' * 5000}' "
                               "WHERE account_id = 0 AND seq = 0")
        monkeypatch.setenv("TARGET_PASSWORD", "migrator-secret")
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["events"],
                                  TARGET={"USERNAME": "migrator",
                                          "PASSWORD_ENV": "TARGET_PASSWORD"})

        code, summary = run_migration(settings)

        assert code == 1
        (table,) = summary["tables"]
        assert (table["rows_read"], table["rows_written"], table["rows_failed"]) == (1000, 999, 1)
        (record,) = dead_letters(settings, "failed_rows")
        assert record["table"] == f"{keyspace}.events"
        assert record["partition_key"] == {"account_id": 0} and record["clustering"] == {"seq": 0}
        assert record["error"] == "InvalidRequest" and "column_value_size" in record["message"]
        assert record["row"]["note"] == "x" * 5000
        assert record["cql"].startswith(f"INSERT INTO {keyspace}.events (")
        expected = [row for row in rows_of(source_session, keyspace, "events", COLUMNS)
                    if row[:2] != (0, 0)]
        assert rows_of(admin, keyspace, "events", COLUMNS) == expected
        log = (tmp_path / "migrator.log").read_text()
        assert "partition {'account_id': 0}, clustering {'seq': 0}" in log
        assert "Traceback" in log or "InvalidRequest" in log
        assert "migrator-secret" not in log
        assert "migrator-secret" not in (tmp_path / "summary.json").read_text()
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_migration_to_a_target_that_requires_tls(tmp_path, keyspace, cassandra_hosts,
                                                 source_session, local_cluster_factory):
    from tools.local_cassandra import launcher

    host = local_cluster_factory(4, tls=True)
    ca_cert = launcher.node_dir(host) / "tls" / "node.pem"
    sample_data.fill_table(source_session, keyspace, "events", 500, "mixed")
    plain = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["events"])
    assert run_migration(plain)[0] == 2  # the node accepts no plain connection

    tls = TlsOptions(ca_certs=str(ca_cert))
    admin = CassandraConnection((host,), tls=tls).new_cluster()
    session = admin.connect()
    try:
        create_keyspace(session, keyspace)
        sample_data.create_table(session, keyspace, "events")
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["events"],
                                  TARGET={"SSL": {"ENABLED": True, "CA_CERTS": str(ca_cert)}})
        code, summary = run_migration(settings)
        assert code == 0
        assert summary["tables"][0]["rows_written"] == 500
        assert rows_of(session, keyspace, "events", COLUMNS) == rows_of(
            source_session, keyspace, "events", COLUMNS)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        admin.shutdown()


def test_tens_of_thousands_of_refused_rows_each_have_one_dead_letter(
        tmp_path, keyspace, cassandra_hosts, source_session, guarded_target, monkeypatch):
    """Every row over the target's guardrail: 20,000 failures, each counted once and each with
    exactly one record in the dead-letter files."""
    host, admin = guarded_target
    create_keyspace(admin, keyspace)
    try:
        sample_data.fill_table(source_session, keyspace, "events", 20_000, "narrow")
        sample_data.create_table(admin, keyspace, "events")
        keys = [row[:2] for row in rows_of(source_session, keyspace, "events", COLUMNS)]
        update = source_session.prepare(f"UPDATE {keyspace}.events SET note = ? "
                                        "WHERE account_id = ? AND seq = ?")
        execute_concurrent_with_args(source_session, update,
                                     [("x" * 3000, *key) for key in keys], concurrency=64)
        monkeypatch.setenv("TARGET_PASSWORD", "migrator-secret")
        settings = write_settings(tmp_path, cassandra_hosts[0], host, keyspace, ["events"],
                                  TARGET={"USERNAME": "migrator",
                                          "PASSWORD_ENV": "TARGET_PASSWORD"},
                                  MAX_FAILED_ROWS=None, LOG_LEVEL="WARNING")

        code, summary = run_migration(settings)

        assert code == 1
        (table,) = summary["tables"]
        assert (table["rows_read"], table["rows_written"]) == (20_000, 0)
        records = dead_letters(settings, "failed_rows")
        assert table["rows_failed"] == table["dead_letter_records"] == len(records) == 20_000
        assert sorted((record["partition_key"]["account_id"], record["clustering"]["seq"])
                      for record in records) == sorted(keys)
        assert rows_of(admin, keyspace, "events", COLUMNS) == []
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_a_target_table_dropped_mid_run_stops_the_table_at_once(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session):
    sample_data.fill_table(source_session, keyspace, "events", 50_000, "narrow")
    sample_data.create_table(target_session, keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              MAX_ROWS_PER_SECOND=5_000, MAX_FAILED_ROWS=None)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run_migration(settings)))
    runner.start()
    time.sleep(4)
    target_session.execute(f"DROP TABLE {keyspace}.events")
    runner.join(timeout=300)

    code, summary = outcome["result"]
    assert code == 1
    (table,) = summary["tables"]
    assert table["status"] == "stopped"
    assert "does not exist" in table["stopped"] or "Unknown CF" in table["stopped"]
    assert table["rows_read"] < 50_000 and table["rows_failed"] < 5_000
    assert table["rows_failed"] == table["dead_letter_records"] == len(
        dead_letters(settings, "failed_rows"))
    assert table["work_items_done"] < table["work_items_total"]


def test_rows_written_at_the_fallback_level_keep_their_record_through_a_kill(
        tmp_path, cassandra_hosts, source_session, target_session, keyspace, rf3_keyspace):
    """Every write falls back to ONE (RF 3 on one node). The migrator is killed mid-run: the
    rows of every item the ledger calls done are listed in a downgraded_rows file already on
    disk, and after --resume the run's summary counts every row written at ONE once."""
    rows = 20_000
    target_keyspace = rf3_keyspace(target_session)
    sample_data.fill_table(source_session, keyspace, "events", rows, "narrow")
    sample_data.create_table(target_session, target_keyspace, "events")
    ledger = f"{keyspace}_ledger"
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              target_keyspace=target_keyspace, LEDGER_KEYSPACE=ledger,
                              SPLITS=32, MAX_ROWS_PER_SECOND=4_000)
    process = subprocess.Popen([sys.executable, "-m", "pipelines.migrate", "--config",
                                str(settings)], cwd=PROJECT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        done = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if target_session.cluster.metadata.keyspaces.get(ledger) is not None:
                try:
                    done = [row.rows_written for row in target_session.execute(
                        f"SELECT status, rows_written FROM {ledger}.work_items")
                        if row.status == "done"]
                except Exception:  # noqa: BLE001 - the ledger table is being created
                    done = []
                if len(done) >= 10:
                    break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the migration ended before it was killed"
        done = [row.rows_written for row in target_session.execute(
            f"SELECT status, rows_written FROM {ledger}.work_items") if row.status == "done"]
        recorded = dead_letters(settings, "downgraded_rows")
        assert 0 < sum(done) <= len(recorded) < rows, (sum(done), len(recorded))

        code, summary = run_migration(settings, "--resume")

        assert code == 0, summary
        (table,) = summary["tables"]
        assert table["run_rows_written"] == table["run_rows_downgraded"] == rows
        assert 0 < table["consistency_downgrades"] < rows  # this attempt's own
        recorded = dead_letters(settings, "downgraded_rows")
        keys = {(record["partition_key"]["account_id"], record["clustering"]["seq"])
                for record in recorded}
        assert keys == {row[:2] for row in rows_of(source_session, keyspace, "events",
                                                    ("account_id", "seq"))}
        assert {record["consistency"] for record in recorded} == {"ONE"}
    finally:
        if process.poll() is None:
            process.kill()
        target_session.execute(f"DROP KEYSPACE IF EXISTS {ledger}")
