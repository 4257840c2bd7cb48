"""--resume trusts a done work item only while the target table and the settings it was written
with are the same: a table dropped and created again, truncated, or written with other settings
is refused (exit 2, naming the table and the way out), against the real clusters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import preflight, runs
from pipelines.config import load_settings
from tests.helpers import rows_of, run_migration, write_settings

ROWS = 2_000
PROJECT = Path(__file__).resolve().parents[1]
TABLE = "CREATE TABLE {ks}.events (id int, seq int, body text, PRIMARY KEY (id, seq))"


def _copied(tmp_path, cassandra_hosts, keyspace, source_session, target_session):
    for session in (source_session, target_session):
        session.execute(TABLE.format(ks=keyspace))
    insert = source_session.prepare(f"INSERT INTO {keyspace}.events (id, seq, body) "
                                    "VALUES (?, ?, ?)")
    for index in range(ROWS):
        source_session.execute(insert, (index % 97, index, f"body {index}"))
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["events"],
                              LEDGER_KEYSPACE=f"{keyspace}_ledger")
    code, summary = run_migration(settings)
    assert code == 0, summary
    return settings


@pytest.fixture
def ledger_cleanup(keyspace, target_session):
    yield
    target_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}_ledger")


def test_a_resume_onto_an_unchanged_table_is_trusted(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, ledger_cleanup):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, target_session)
    code, summary = run_migration(settings, "--resume")
    assert code == 0, summary
    assert summary["tables"][0]["rows_read"] == 0  # every item was done: nothing read again
    assert len(rows_of(target_session, keyspace, "events", ("id", "seq"))) == ROWS


@pytest.mark.parametrize("change", ["recreated", "truncated", "preserve_ttl", "where",
                                    "source_recreated"])
def test_a_resume_onto_a_changed_table_or_settings_is_refused(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, ledger_cleanup,
        caplog, change):
    settings = _copied(tmp_path, cassandra_hosts, keyspace, source_session, target_session)
    extra = []
    if change == "recreated":  # what a person does after a table-fatal stop
        target_session.execute(f"DROP TABLE {keyspace}.events")
        target_session.execute(TABLE.format(ks=keyspace))
    elif change == "truncated":
        target_session.execute(f"TRUNCATE {keyspace}.events")
    elif change == "preserve_ttl":
        extra = ["--set", "PRESERVE_TTL=false"]
    elif change == "source_recreated":  # as another source cluster of the same name would be
        source_session.execute(f"DROP TABLE {keyspace}.events")
        source_session.execute(TABLE.format(ks=keyspace))
    else:
        extra = ["--set", "TABLES=[{SOURCE: events, WHERE: 'seq > 10'}]"]

    code, summary = run_migration(settings, "--resume", *extra)

    assert code == 2, summary
    message = {
        "recreated": "is not the one that run wrote to",
        "truncated": f"is empty, but that run's done work items wrote {ROWS:,} rows",
        "preserve_ttl": "differ from that run's",
        "where": "differ from that run's",
        "source_recreated": "that run read another table than",
    }[change]
    assert message in caplog.text
    assert f"{keyspace}.events" in caplog.text and "start a new run" in caplog.text
    assert "start a new run" in caplog.text
    if change != "truncated":
        count = len(rows_of(target_session, keyspace, "events", ("id", "seq")))
        assert count == (0 if change == "recreated" else ROWS)  # nothing written


def test_the_fingerprint_names_the_table_id_and_the_settings(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, ledger_cleanup):
    settings_path = _copied(tmp_path, cassandra_hosts, keyspace, source_session, target_session)
    settings = load_settings(str(settings_path))
    with preflight.connected(settings) as clusters:
        (plan,) = preflight.check_against_clusters(settings, clusters)
        first = runs.fingerprint(settings, plan, clusters.source, clusters.target)
        query = ("SELECT id FROM system_schema.tables WHERE keyspace_name = %s "
                 "AND table_name = %s")
        target_id = target_session.execute(query, (keyspace, "events")).one()[0]
        source_id = source_session.execute(query, (keyspace, "events")).one()[0]
        assert target_id != source_id
        assert first.startswith(f"table {target_id}; source {source_id}; settings ")
        assert runs.fingerprint(settings, plan, clusters.source, clusters.target) == first
        other = load_settings(str(settings_path), ["PRESERVE_WRITETIME=false"])
        changed = runs.fingerprint(other, plan, clusters.source, clusters.target)
        assert changed.split("; ")[:2] == first.split("; ")[:2] and changed != first


def test_a_settings_file_moved_elsewhere_resumes_its_run_and_runs_lists_it(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, ledger_cleanup):
    """A run is found by what it copies, not by where its settings file lies."""
    first = tmp_path / "first"
    first.mkdir()
    settings = _copied(first, cassandra_hosts, keyspace, source_session, target_session)
    (run_id,) = [row.run_id for row in target_session.execute(
        f"SELECT run_id FROM {keyspace}_ledger.runs")]
    elsewhere = tmp_path / "elsewhere" / "copy.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(settings.read_text())

    for resume in (["--resume"], ["--resume", run_id]):
        code, summary = run_migration(elsewhere, *resume)
        assert code == 0, summary
        assert summary["run_id"] == run_id and summary["tables"][0]["rows_read"] == 0

    listed = subprocess.run([sys.executable, "-m", "pipelines.cli", "runs", "--config",
                             str(elsewhere)], cwd=PROJECT, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith(run_id)]
    assert f"migrate: {source_session.cluster.metadata.cluster_name}/{keyspace}" in line
    assert f"{keyspace}.events->{keyspace}.events" in line and line.rstrip().endswith("done")
    assert "1 run in the ledger" in listed.stdout
