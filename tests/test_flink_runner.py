"""Beam Python pipelines run for real on Apache Flink (embedded Flink, LOOPBACK workers).

Needs Java 17 and Maven on PATH; the first run fetches the job server jars from Maven Central
into ``.local/flink/`` (``tools.flink_runner``). Nothing here is skipped: a missing tool fails
with the reason.

The pipeline squares 1..1000 after a Reshuffle, counts with a Beam counter, writes every record
(with the identity of the DoFn instance and bundle that made it) and the sum to text files. The
tests check the data, that the counter reaches the launching process through the runner, and
that the work was split over ``PARALLELISM`` DoFn instances, each set up before use.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions
from apache_beam.runners.runner import PipelineState

from tools import flink_runner

PARALLELISM = 2
NUMBERS = range(1, 1001)
NAMESPACE = "flink_runner_test"
REPO_ROOT = Path(__file__).resolve().parent.parent

_LOGGER = logging.getLogger(__name__)


class _SquareAndRecord(beam.DoFn):
    """Squares a number and tells which DoFn instance, bundle, process and thread did it."""

    def __init__(self, setup_dir: str) -> None:
        self._setup_dir = setup_dir
        self._squared = Metrics.counter(NAMESPACE, "squared")

    def setup(self) -> None:
        self._instance = uuid.uuid4().hex
        Path(self._setup_dir, self._instance).write_text(str(os.getpid()))
        _LOGGER.info("flink test DoFn set up: instance %s", self._instance)

    def start_bundle(self) -> None:
        self._bundle = uuid.uuid4().hex

    def process(self, number: int):
        self._squared.inc()
        yield json.dumps({"number": number, "square": number * number,
                          "instance": self._instance, "bundle": self._bundle,
                          "pid": os.getpid(), "thread": threading.current_thread().name})


def build_squares(pipeline: beam.Pipeline, output_dir: Path) -> None:
    """Create -> Reshuffle -> square (counted) -> records file, and the sum -> sum file."""
    setup_dir = output_dir / "setup"
    setup_dir.mkdir(parents=True, exist_ok=True)
    records = (pipeline
               | "Numbers" >> beam.Create(list(NUMBERS))
               | "Spread" >> beam.Reshuffle()
               | "Square" >> beam.ParDo(_SquareAndRecord(str(setup_dir))))
    _ = records | "WriteRecords" >> beam.io.WriteToText(str(output_dir / "records"),
                                                        file_name_suffix=".jsonl")
    _ = (records
         | "Squares" >> beam.Map(lambda line: json.loads(line)["square"])
         | "Sum" >> beam.CombineGlobally(sum)
         | "WriteSum" >> beam.io.WriteToText(str(output_dir / "sum"), shard_name_template=""))


def _read_records(output_dir: Path) -> list[dict]:
    return [json.loads(line)
            for shard in sorted(output_dir.glob("records*.jsonl"))
            for line in shard.read_text().splitlines()]


def _check_output(output_dir: Path) -> list[dict]:
    """Assert the files hold every square once and the right sum; return the records."""
    records = _read_records(output_dir)
    assert sorted(record["number"] for record in records) == list(NUMBERS)
    assert all(record["square"] == record["number"] ** 2 for record in records)
    assert int((output_dir / "sum").read_text()) == sum(n * n for n in NUMBERS)
    return records


def _counter(result, name: str) -> tuple[int | None, int | None]:
    """(committed, attempted) of one counter of this test's namespace, summed over steps."""
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))
    found = counters["counters"]
    assert found, f"counter {NAMESPACE}/{name} did not come back from the runner"
    committed = sum(item.committed or 0 for item in found)
    attempted = sum(item.attempted or 0 for item in found)
    return committed, attempted


from tests.conftest import HARNESS_SHUTDOWN_RACE as _HARNESS_SHUTDOWN_RACE  # noqa: E402


@pytest.mark.filterwarnings(_HARNESS_SHUTDOWN_RACE)
def test_pipeline_runs_on_flink_with_parallelism(flink_job_server, tmp_path, caplog):
    options = PipelineOptions(flink_job_server.pipeline_args(parallelism=PARALLELISM))
    pipeline = beam.Pipeline(options=options)
    build_squares(pipeline, tmp_path)

    with caplog.at_level(logging.INFO, logger=__name__):
        result = pipeline.run()
        state = result.wait_until_finish()

    assert state == PipelineState.DONE, flink_job_server.log_tail()
    records = _check_output(tmp_path)
    assert _counter(result, "squared") == (len(NUMBERS), len(NUMBERS))

    instances = {record["instance"] for record in records}
    assert len(instances) == PARALLELISM, (
        f"expected the squares to be made by {PARALLELISM} parallel DoFn instances, got "
        f"{len(instances)}")
    set_up = {path.name for path in (tmp_path / "setup").iterdir()}
    assert instances <= set_up, "a DoFn instance processed elements without setup()"
    # LOOPBACK: the SDK workers are threads of this process, so DoFns log here and reach
    # whatever this process reaches (127.0.0.x included).
    assert {record["pid"] for record in records} == {os.getpid()}
    logged = {record.getMessage() for record in caplog.records if record.name == __name__}
    assert {f"flink test DoFn set up: instance {instance}" for instance in instances} <= logged


def _run_with_flink_runner(output_dir: str) -> None:
    """Entry point of the FlinkRunner test's subprocess: run, then save the counter."""
    options = PipelineOptions(flink_runner.flink_pipeline_args(parallelism=PARALLELISM))
    pipeline = beam.Pipeline(options=options)
    build_squares(pipeline, Path(output_dir))
    result = pipeline.run()
    state = result.wait_until_finish()
    Path(output_dir, "result.json").write_text(
        json.dumps({"state": str(state), "squared": _counter(result, "squared")}))


def test_flink_pipeline_args_run_with_beams_flink_runner(tmp_path):
    args = flink_runner.flink_pipeline_args(parallelism=PARALLELISM)
    flink_options = PipelineOptions(args).view_as(FlinkRunnerOptions)
    assert flink_options.flink_master == "[local]"
    assert flink_options.parallelism == PARALLELISM
    assert Path(flink_options.flink_job_server_jar).is_file()

    # In a child process: Beam keeps the job server JVM that FlinkRunner starts until the
    # Python process that started it exits.
    code = ("import sys; from tests.test_flink_runner import _run_with_flink_runner; "
            "_run_with_flink_runner(sys.argv[1])")
    completed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO_ROOT,
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-4000:]
    outcome = json.loads((tmp_path / "result.json").read_text())
    assert outcome["state"] == PipelineState.DONE
    assert outcome["squared"] == [len(NUMBERS), len(NUMBERS)]
    records = _check_output(tmp_path)
    assert len({record["instance"] for record in records}) == PARALLELISM
