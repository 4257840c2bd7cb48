"""The README's first command: the demo migrates a generated table between the local clusters."""

from __future__ import annotations

import json

from tools import demo


def test_demo_migrates_and_verifies_the_sample_table(tmp_path, monkeypatch, capsys,
                                                     cassandra_hosts, source_session,
                                                     target_session):
    monkeypatch.chdir(tmp_path)  # the example settings write their files to the working folder
    try:
        code = demo.main(["--rows", "3000", "--source-host", cassandra_hosts[0],
                          "--target-host", cassandra_hosts[1]])
        output = capsys.readouterr().out
        assert code == 0
        assert "demo.events  demo.events  success  3,000" in output
        assert "equals the source row for row (3,000 rows)" in output
        summary = json.loads((tmp_path / "migration_summary.json").read_text())
        assert summary["tables"][0]["rows_written"] == 3000
        log = (tmp_path / "migrator.log").read_text()
        assert log.count("migrating demo.events") == 1
        # Replica-set batches draw a server warning each; they are expected, not logged.
        assert "Unlogged batch covering" not in log and "Server warning: Batch" not in log
    finally:
        for session in (source_session, target_session):
            session.execute("DROP KEYSPACE IF EXISTS demo")
