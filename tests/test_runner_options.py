"""What the launcher derives from the runner: where dead letters go, and each process's share
of MAX_ROWS_PER_SECOND. Pure logic: nothing runs."""

from __future__ import annotations

import os

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import migrate, plan
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


def test_a_local_differences_dir_is_refused_for_a_validation_on_dataflow(tmp_path, capsys):
    from pipelines import validate

    path = tmp_path / "migrator_settings.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "FAILED_ROWS_DIR": "gs://bucket/dead",
                                    "LOG_FILE": str(tmp_path / "m.log"),
                                    "DIFFERENCES_DIR": str(tmp_path / "differences")}))

    assert validate.run(["--config", str(path), "--runner=DataflowRunner"]) == 2

    error = capsys.readouterr().err
    assert f"DIFFERENCES_DIR: {tmp_path / 'differences'} is a local path" in error
    assert not (tmp_path / "m.log").exists()


def test_a_bucket_dead_letter_dir_passes_on_dataflow_and_any_dir_elsewhere(tmp_path):
    bucket = settings_with(tmp_path, FAILED_ROWS_DIR="gs://bucket/dead")
    local = settings_with(tmp_path, FAILED_ROWS_DIR="dead")
    migrate.check_dead_letter_dir_for_runner(bucket, PipelineOptions(["--runner=DataflowRunner"]))
    for runner in ("DirectRunner", "FlinkRunner", "PortableRunner"):
        migrate.check_dead_letter_dir_for_runner(local, PipelineOptions([f"--runner={runner}"]))
    with pytest.raises(SettingsError):
        migrate.check_dead_letter_dir_for_runner(local,
                                                 PipelineOptions(["--runner=DataflowRunner"]))


# (Beam options, processes MAX_ROWS_PER_SECOND is divided among). Each process shares one
# limiter among all its writer threads, so the division counts processes, not threads.
RATE_DIVISIONS = [
    ("direct default", [], 1),
    ("direct threads", ["--direct_num_workers=4", "--direct_running_mode=multi_threading"], 1),
    ("direct processes", ["--direct_num_workers=3", "--direct_running_mode=multi_processing"],
     3),
    ("direct num_workers ignored", ["--runner=DirectRunner", "--num_workers=8"], 1),
    ("embedded flink", ["--runner=FlinkRunner", "--parallelism=4"], 1),
    ("embedded flink [local]", ["--runner=FlinkRunner", "--flink_master=[local]",
                                "--parallelism=4"], 1),
    ("flink loopback", ["--runner=FlinkRunner", "--flink_master=jm:8081",
                        "--environment_type=LOOPBACK", "--parallelism=4"], 1),
    ("flink cluster, docker by default", ["--runner=FlinkRunner", "--flink_master=jm:8081",
                                          "--parallelism=4"], 4),
    ("flink process", ["--runner=FlinkRunner", "--flink_master=jm:8081",
                       "--environment_type=PROCESS", "--parallelism=6"], 6),
    ("embedded flink, docker", ["--runner=FlinkRunner", "--environment_type=DOCKER",
                                "--parallelism=2"], 2),
    ("portable loopback", ["--runner=PortableRunner", "--job_endpoint=localhost:8099",
                           "--environment_type=LOOPBACK", "--parallelism=2"], 1),
    ("portable external", ["--runner=PortableRunner", "--job_endpoint=localhost:8099",
                           "--environment_type=EXTERNAL", "--parallelism=3"], 3),
    ("portable, docker by default", ["--runner=PortableRunner", "--parallelism=3"], 3),
    ("portable without parallelism: MAX_WORKERS", ["--runner=PortableRunner",
                                                   "--environment_type=EXTERNAL"], 5),
    ("dataflow default", ["--runner=DataflowRunner"], 1),
    ("dataflow workers", ["--runner=DataflowRunner", "--num_workers=3"], 3),
    ("dataflow max workers x vCPUs", ["--runner=DataflowRunner", "--num_workers=2",
                                      "--max_num_workers=10", "--machine_type=n1-standard-4"],
     40),
    ("dataflow worker_machine_type", ["--runner=DataflowRunner", "--num_workers=2",
                                      "--worker_machine_type=n2-highmem-8"], 16),
    ("dataflow custom type", ["--runner=DataflowRunner", "--max_num_workers=2",
                              "--machine_type=n2-custom-6-20480"], 12),
    ("dataflow shared core", ["--runner=DataflowRunner", "--max_num_workers=2",
                              "--machine_type=e2-medium"], 4),
    ("dataflow unknown type", ["--runner=DataflowRunner", "--max_num_workers=2",
                               "--machine_type=mystery"], 2),
    ("dataflow one SDK process per VM", ["--runner=DataflowRunner", "--max_num_workers=10",
                                         "--machine_type=n1-standard-4",
                                         "--experiments=no_use_multiple_sdk_containers"], 10),
]


@pytest.mark.parametrize(("argv", "processes"), [case[1:] for case in RATE_DIVISIONS],
                         ids=[case[0] for case in RATE_DIVISIONS])
def test_the_rate_limit_is_divided_among_the_processes_that_write(tmp_path, argv, processes):
    settings = settings_with(tmp_path, MAX_ROWS_PER_SECOND=1200)
    assert migrate.rate_per_process(settings, PipelineOptions(argv)) == 1200 / processes


def test_no_rate_limit_is_none_on_every_runner(tmp_path):
    settings = settings_with(tmp_path)
    for argv, _ in [case[1:] for case in RATE_DIVISIONS]:
        assert migrate.rate_per_process(settings, PipelineOptions(argv)) is None


def test_plan_says_how_the_rate_limit_is_shared(tmp_path):
    argv = ["--runner=PortableRunner", "--environment_type=EXTERNAL", "--parallelism=4"]
    shared = plan._rate_limit(settings_with(tmp_path, MAX_ROWS_PER_SECOND=1200),
                              PipelineOptions(argv))
    assert shared == ("MAX_ROWS_PER_SECOND 1,200 rows/s for the run: shared through the ledger "
                      "by the processes writing at the moment, each starting at 300.0 rows/s "
                      "(4 writing processes expected)")
    static = plan._rate_limit(settings_with(tmp_path, MAX_ROWS_PER_SECOND=1200,
                                            LEDGER_KEYSPACE=None), PipelineOptions(argv))
    assert static.startswith("MAX_ROWS_PER_SECOND 1,200 rows/s for the run: 300.0 rows/s in "
                             "each process (4 writing processes expected; without a ledger")
    assert plan._rate_limit(settings_with(tmp_path), PipelineOptions(argv)) == (
        "none (MAX_ROWS_PER_SECOND: null)")
