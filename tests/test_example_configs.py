"""The example settings of configs/examples load as they are (secrets and certificates
supplied as a user would), pass the checks of the runner they are written for, and, on the
local clusters, plan a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import migrate, plan
from pipelines.config import load_settings
from tools import sample_data

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"


def test_every_example_is_tested_here():
    assert sorted(path.name for path in EXAMPLES.glob("*.yaml")) == [
        "dataflow.yaml", "flink_cluster.yaml", "live_source_throttled.yaml",
        "secure_cluster.yaml"]


def test_the_secure_cluster_example(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_PASSWORD", "source secret")
    monkeypatch.setenv("TARGET_PASSWORD", "target secret")
    files = {}
    for name in ("old-cluster-ca.pem", "new-cluster-ca.pem", "migrator.crt", "migrator.key"):
        files[name] = tmp_path / name
        files[name].write_text("a PEM file\n")
    settings = load_settings(str(EXAMPLES / "secure_cluster.yaml"), [
        f"SOURCE.SSL.CA_CERTS={files['old-cluster-ca.pem']}",
        f"TARGET.SSL.CA_CERTS={files['new-cluster-ca.pem']}",
        f"TARGET.SSL.CERTFILE={files['migrator.crt']}",
        f"TARGET.SSL.KEYFILE={files['migrator.key']}"])
    assert settings.source.connection.local_dc == "dc_analytics"
    assert settings.source.connection.resolve_password() == "source secret"
    assert settings.target.connection.tls.certfile == str(files["migrator.crt"])
    assert [table.source for table in settings.tables] == ["orders", "customers"]
    assert "secret" not in repr(settings)


def test_the_dataflow_example_passes_the_dataflow_checks(monkeypatch):
    monkeypatch.setenv("LAUNCHER_SOURCE_PASSWORD", "x")
    monkeypatch.setenv("LAUNCHER_TARGET_PASSWORD", "y")
    path = str(EXAMPLES / "dataflow.yaml")
    settings = load_settings(path)
    options = PipelineOptions(["--runner=DataflowRunner", "--project=p", "--region=r",
                               "--temp_location=gs://b/tmp"])
    migrate.check_secrets_for_runner(settings, options)
    migrate.check_dead_letter_dir_for_runner(settings, options)
    migrate.check_dead_letter_dir_for_runner(settings, options, "DIFFERENCES_DIR")
    migrate.check_outputs(settings, "FAILED_ROWS_DIR")
    assert settings.failed_rows_dir.startswith("gs://")
    assert settings.target.launcher_login is not None


def test_the_flink_example_passes_the_checks_of_a_remote_cluster(monkeypatch):
    monkeypatch.setenv("LAUNCHER_PASSWORD", "z")
    settings = load_settings(str(EXAMPLES / "flink_cluster.yaml"))
    options = PipelineOptions(["--runner=PortableRunner", "--job_endpoint=h:8099",
                               "--environment_type=EXTERNAL",
                               "--environment_config=localhost:50000", "--parallelism=8"])
    migrate.check_secrets_for_runner(settings, options)  # the workers hold the password
    assert migrate.writing_processes(settings, options) == 8


def test_the_live_source_example_plans_a_run_on_the_local_clusters(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, capsys):
    sample_data.fill_table(source_session, keyspace, "events", 500, "narrow")
    sample_data.create_table(target_session, keyspace, "events")
    code = plan.run(["--config", str(EXAMPLES / "live_source_throttled.yaml"),
                     "--set", f"SOURCE.HOSTS=[{cassandra_hosts[0]}]",
                     "--set", f"TARGET.HOSTS=[{cassandra_hosts[1]}]",
                     "--set", "SOURCE.LOCAL_DC=null",
                     "--set", f"SOURCE.KEYSPACE={keyspace}", "--set", f"TARGET.KEYSPACE={keyspace}",
                     "--set", f"LOG_FILE={tmp_path / 'plan.log'}", "--set", "LEDGER_KEYSPACE=null"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"{keyspace}.events" in printed and "5,000" in printed


@pytest.mark.parametrize("name", ["secure_cluster.yaml", "live_source_throttled.yaml",
                                  "dataflow.yaml", "flink_cluster.yaml"])
def test_no_example_holds_a_password(name):
    text = (EXAMPLES / name).read_text()
    assert "PASSWORD:" not in text.replace("PASSWORD_ENV:", "").replace("PASSWORD_FILE:", "")
