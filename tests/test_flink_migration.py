"""The migration on Apache Flink (embedded, LOOPBACK workers, parallelism 2) against the real
local clusters: the same pipeline, metrics back through the runner, the summary from them."""

from __future__ import annotations

import pytest

from tests.conftest import HARNESS_SHUTDOWN_RACE
from tests.helpers import differences, rows_of, run_migration, run_validation, write_settings
from tools import sample_data


@pytest.mark.filterwarnings(HARNESS_SHUTDOWN_RACE)
def test_50k_rows_migrate_on_flink(tmp_path, keyspace, cassandra_hosts, source_session,
                                   target_session, flink_job_server):
    sample_data.fill_table(source_session, keyspace, "events", 50_000, "mixed")
    sample_data.create_table(target_session, keyspace, "events")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              MAX_WORKERS=2)

    code, summary = run_migration(settings, *flink_job_server.pipeline_args(parallelism=2))

    assert code == 0, flink_job_server.log_tail()
    source_rows = rows_of(source_session, keyspace, "events", sample_data.COLUMNS)
    assert len(source_rows) == 50_000
    assert rows_of(target_session, keyspace, "events", sample_data.COLUMNS) == source_rows
    (table,) = summary["tables"]
    assert (table["rows_read"], table["rows_written"], table["rows_failed"]) == (50_000, 50_000, 0)
    assert table["status"] == summary["status"] == "success"
    assert table["seconds"] > 0
    log = (tmp_path / "migrator.log").read_text()
    assert "migrating" in log and f"{keyspace}.events" in log
    # The workers recorded every work item in the run ledger ...
    assert table["work_items_done"] == table["work_items_total"] > 1
    assert table["run_rows_written"] == 50_000 and summary["run_id"]

    # ... so a resume on Flink finds nothing left to do, and says so.
    code, resumed = run_migration(settings, "--resume",
                                  *flink_job_server.pipeline_args(parallelism=2))
    assert code == 0, flink_job_server.log_tail()
    assert resumed["run_id"] == summary["run_id"]
    (table,) = resumed["tables"]
    assert table["rows_read"] == 0 and table["work_items_done"] == table["work_items_total"]

    # A validation on Flink: both sides read by the workers, differences found and repaired.
    for account in range(100):
        source_session.execute(f"INSERT INTO {keyspace}.events (account_id, seq, note) "
                               "VALUES (%s, 1, 'added later')", (1_000_000 + account,))
    source_rows = rows_of(source_session, keyspace, "events", sample_data.COLUMNS)
    code, validation = run_validation(settings, "--set", "AUTO_CORRECT=true",
                                      *flink_job_server.pipeline_args(parallelism=2))
    assert code == 1, flink_job_server.log_tail()  # 100 missing rows found (and corrected)
    (table,) = validation["tables"]
    assert table["missing"] == table["corrected"] == 100
    assert table["valid"] == 50_000
    assert len(differences(validation)) == table["missing"]
    assert rows_of(target_session, keyspace, "events", sample_data.COLUMNS) == source_rows
