"""The benchmark command runs end to end on a tiny table: a smoke test, with no timing asserted.

The peers (cqlsh COPY, dsbulk) run too: cqlsh comes with the bench extra, dsbulk's jars are
fetched with mvn on the first run (about 30 MB from Maven Central into .local/dsbulk/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
CONTENDERS = ("pipeline_default", "pipeline_best", "write_ceiling", "read_floor", "old_script",
              "cqlsh_copy", "dsbulk")
ROWS = 2_000
PER_MILLION = 1_000_000 / ROWS


def test_bench_measures_every_contender_and_verifies_the_rows(tmp_path, cassandra_hosts,
                                                              source_session, target_session):
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--rows", str(ROWS), "--shape", "narrow",
         "--source-host", cassandra_hosts[0], "--target-host", cassandra_hosts[1],
         "--best-set", "MAX_WORKERS=2", "--best-set", "BATCH_MODE=REPLICA_SET",
         "--output", str(output)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=900)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(output.read_text())
    assert (report["rows"], report["shape"], report["skipped"]) == (ROWS, "narrow", {})
    assert report["source_table"]["settle_seconds"] >= 5
    for name in CONTENDERS:
        figures = report["contenders"][name]
        assert figures["ok"], (name, figures.get("error"))
        assert figures["rows_verified"] == ROWS, name
        assert figures["rows_per_second"] > 0, name
        assert figures["peak_rss_mib"] > 0, name
        assert set(figures["cassandra_cpu_seconds_by_host"]) == set(cassandra_hosts[:2]), name
        assert figures["cassandra_cpu_seconds"] == pytest.approx(
            sum(figures["cassandra_cpu_seconds_by_host"].values()), abs=0.15), name
    for name, figures in report["contenders"].items():
        # Per million rows, from the run's CPU seconds (rounded to 0.1 s in the report).
        assert figures["client_cpu_seconds_per_million_rows"] > 0, name
        assert figures["client_cpu_seconds_per_million_rows"] == pytest.approx(
            figures["cpu_seconds"] * PER_MILLION, abs=0.06 * PER_MILLION), name
        by_host = figures["cassandra_cpu_seconds_per_million_rows_by_host"]
        assert set(by_host) == set(cassandra_hosts[:2]), name
        # A contender that touches one cluster only (the ceiling, the floor) leaves the other
        # node idle: each node's figure is there, their total is positive.
        assert all(value >= 0 for value in by_host.values()), (name, by_host)
        assert figures["cassandra_cpu_seconds_per_million_rows"] > 0, name
        assert figures["cassandra_cpu_seconds_per_million_rows"] == pytest.approx(
            sum(by_host.values()), abs=0.2), name
        assert figures["cassandra_cpu_seconds_per_million_rows"] == pytest.approx(
            figures["cassandra_cpu_seconds"] * PER_MILLION, abs=0.06 * PER_MILLION), name
    for name, tool in (("cqlsh_copy", "cqlsh 6.2."), ("dsbulk", "dsbulk 1.10.0")):
        figures = report["contenders"][name]
        assert figures["tool"].startswith(tool), figures["tool"]
        assert figures["export_seconds"] > 0 and figures["import_seconds"] > 0, name
        assert figures["seconds"] == pytest.approx(
            figures["export_seconds"] + figures["import_seconds"], abs=0.01), name
    assert report["contenders"]["pipeline_best"]["settings"] == ["MAX_WORKERS=2",
                                                                 "BATCH_MODE=REPLICA_SET"]
    assert set(report["contenders"]["write_ceiling"]["methods"]) == {"prepared", "concurrent",
                                                                     "batches"}
    for name in ("pipeline_default", "pipeline_best"):
        assert report["contenders"][name]["rows_written"] == ROWS
    assert report["contenders"]["read_floor"]["rows_read"] == ROWS
    validation = report["contenders"]["validate"]
    assert (validation["valid"], validation["rows_read_target"]) == (ROWS, ROWS)
    assert report["ratios"]["validate_time_to_pipeline_default_time"] > 0
    assert set(report["cassandra_background_cpu_cores"]) == set(cassandra_hosts[:2])
    bound = report["copy_bound"]
    assert bound["cpu_seconds"]["total"] == pytest.approx(sum(
        value for name, value in bound["cpu_seconds"].items() if name != "total"), abs=0.01)
    assert bound["rows_per_second"] == pytest.approx(
        ROWS / (bound["cpu_seconds"]["total"] / bound["cores"]), rel=0.01)
    assert {"pipeline_default_to_write_ceiling", "pipeline_default_to_old_script",
            "pipeline_default_to_copy_bound", "pipeline_best_to_write_ceiling",
            "pipeline_best_to_old_script", "pipeline_default_to_cqlsh_copy",
            "pipeline_default_to_dsbulk"} <= set(report["ratios"])
    for session in (source_session, target_session):
        assert not list(session.execute(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (report["keyspace"],))), "the bench keyspace was left behind"


def test_peak_memory_is_the_contenders_not_the_benchmarks(tmp_path):
    """A child started by a process of 300 MiB reports its own peak, not its parent's (which
    ``wait4``'s ``ru_maxrss`` would give), and the peak of what it allocates is seen."""
    from bench.run import MIB, measure

    ballast = bytearray(300 * MIB)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    small = measure([sys.executable, "-c", "import time; time.sleep(0.5)"],
                    tmp_path / "small", timeout=60)
    big = measure([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); "
                   "b[::4096] = b'1' * len(b[::4096]); time.sleep(0.5)"],
                  tmp_path / "big", timeout=60)
    del ballast

    assert (small.returncode, big.returncode) == (0, 0)
    assert small.largest_process_rss_bytes < 100 * MIB
    assert small.peak_rss_bytes < 100 * MIB
    assert 200 * MIB < big.largest_process_rss_bytes < 300 * MIB


def test_cpu_of_every_process_of_the_tree_is_counted(tmp_path):
    """A child that is waited for (as ``multiprocessing`` joins cqlsh COPY's workers) and one
    that is never waited for (left a zombie when its parent exits) both count towards the
    contender's CPU seconds: half a CPU-second each, besides the parent's own."""
    from bench.run import measure

    parent = tmp_path / "parent.py"
    parent.write_text("""
import multiprocessing, os, subprocess, sys, time

BURN = "import time\\nwhile time.process_time() < 0.5: pass"

def burn():
    exec(BURN)

if __name__ == "__main__":
    joined = multiprocessing.Process(target=burn)
    joined.start()
    joined.join()
    orphan = subprocess.Popen([sys.executable, "-c", BURN])
    stat = f"/proc/{orphan.pid}/stat"
    while open(stat).read().rsplit(") ", 1)[1][0] != "Z":  # finished, and never reaped here
        time.sleep(0.02)
    time.sleep(0.2)  # sampled as a zombie at least once
    os._exit(0)
""", encoding="utf-8")
    measured = measure([sys.executable, str(parent)], tmp_path / "tree", timeout=120)

    assert measured.returncode == 0, measured.stderr_tail()
    # wait4 alone gives about 0.55; sampling may miss the last 50 ms of a process.
    assert measured.cpu_seconds >= 0.9
