"""What the launcher derives from the runner: where dead letters go, and each process's share
of MAX_ROWS_PER_SECOND. Pure logic: nothing runs."""

from __future__ import annotations

import os

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import migrate
from pipelines.config import SettingsError, load_settings

MINIMAL = {"SOURCE": {"HOSTS": ["10.0.0.1"], "KEYSPACE": "shop"},
           "TARGET": {"HOSTS": ["10.0.0.2"], "KEYSPACE": "shop_v2"},
           "TABLES": ["orders"]}


def settings_with(tmp_path, **keys):
    path = tmp_path / "migrator_settings.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **keys}))
    return load_settings(str(path))


def test_a_relative_dead_letter_dir_is_made_absolute_by_the_launcher(tmp_path, monkeypatch):
    """Workers sharing the launcher's file system (a local Flink) then write where the
    launcher reports."""
    monkeypatch.chdir(tmp_path)
    relative = migrate.run_directory(settings_with(tmp_path), 0)
    assert relative == os.path.join(str(tmp_path), "failed_rows", "19700101T000000Z")
    absolute = migrate.run_directory(settings_with(tmp_path, FAILED_ROWS_DIR="/data/dead"), 0)
    assert absolute == "/data/dead/19700101T000000Z"


@pytest.mark.parametrize("runner", ["DataflowRunner", "dataflow"])
def test_a_local_dead_letter_dir_is_refused_on_dataflow(tmp_path, capsys, runner):
    path = tmp_path / "migrator_settings.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "SUMMARY_FILE": str(tmp_path / "s.json"),
                                    "LOG_FILE": str(tmp_path / "m.log"),
                                    "FAILED_ROWS_DIR": str(tmp_path / "dead")}))

    assert migrate.run(["--config", str(path), f"--runner={runner}"]) == 2

    error = capsys.readouterr().err
    assert f"{path}: FAILED_ROWS_DIR: {tmp_path / 'dead'} is a local path" in error
    assert "gs://" in error
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "m.log").exists()


def test_a_bucket_dead_letter_dir_passes_on_dataflow_and_any_dir_elsewhere(tmp_path):
    bucket = settings_with(tmp_path, FAILED_ROWS_DIR="gs://bucket/dead")
    local = settings_with(tmp_path, FAILED_ROWS_DIR="dead")
    migrate.check_dead_letter_dir_for_runner(bucket, PipelineOptions(["--runner=DataflowRunner"]))
    for runner in ("DirectRunner", "FlinkRunner", "PortableRunner"):
        migrate.check_dead_letter_dir_for_runner(local, PipelineOptions([f"--runner={runner}"]))
    with pytest.raises(SettingsError):
        migrate.check_dead_letter_dir_for_runner(local,
                                                 PipelineOptions(["--runner=DataflowRunner"]))
