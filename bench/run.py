"""Benchmark the migration pipeline against a write ceiling, a read floor, the old script and peers.

    python -m bench.run --rows 100000 --shape narrow|wide|kilobyte \
        [--best-set FETCH_BATCH_SIZE=1000 ...] [--best-arg=--direct_running_mode=multi_processing] \
        [--output bench/results/NAME.json] [--repeat 2] [--skip old_script ...] \
        [--source-host 127.0.0.1] [--target-host 127.0.0.2] [--pipeline-revision HEAD] \
        [--old-batch-size 50] [--keyspace bench_mine --keep] [--timeout 7200]

It fills ``<keyspace>.events`` on the source with N rows of the chosen shape
(``tools.sample_data``: narrow = one row per partition, wide = partitions of 1,000 rows,
kilobyte = one row of about 1 KB per partition), creates the same table on the target, and then
measures, each in its own subprocess so that peak memory is per contender:

  * ``pipeline_default``: ``python -m pipelines.migrate`` on the DirectRunner, default settings;
  * ``validate``: ``python -m pipelines.validate`` at default settings, right after
    ``pipeline_default`` (so the target holds its copy, which is not truncated for it): every
    row read on both clusters and compared; it counts as verified when it finds N valid rows;
  * ``pipeline_best``: the same with the ``--best-set KEY=VALUE`` settings and ``--best-arg``
    Beam options (skipped when none are given);
  * ``write_ceiling``: ``bench.write_ceiling``, the rows already in memory, by each method
    (prepared, concurrent, batches), each method in its own subprocess; the best one counts;
  * ``read_floor``: ``bench.read_floor``, the source read as the pipeline must read it (every
    column with its writetime and TTL, fetch size 100), rows discarded;
  * ``old_script``: ``bench.old_script``, the old script's approach re-created;
  * ``cqlsh_copy``: ``cqlsh``'s ``COPY ... TO`` a CSV file in the run's folder from the source,
    then ``COPY ... FROM`` it into the target, at cqlsh's defaults (``bench.peers``);
  * ``dsbulk``: DataStax Bulk Loader 1.10.0, ``unload`` from the source to a CSV folder, then
    ``load`` into the target, default settings, on Java 17 (``bench.peers``; its jars are
    fetched from Maven Central with ``mvn`` into ``.local/dsbulk/`` before its first run).
    dsbulk fails when any keyspace of either cluster has a ``vector`` column (its driver
    cannot parse the type and then sees no keyspace at all): the bench's table has none, and
    the clusters must have none anywhere; the failure message says so and names the columns.

A peer's ``seconds`` are both steps', start-ups included (cqlsh's interpreter, dsbulk's JVM).

The copy bound is N over the CPU seconds (client and Cassandra nodes) that the ceiling's
writes and the floor's reads took, shared over the machine's cores: how fast a copier that
wastes nothing could go where the copier and the nodes share the cores.

The target table is truncated before every run and counted after it: a run that leaves any
other number of rows than N is reported as failed, whatever its speed. Figures per contender:
``seconds`` is the contender's own timed work (pipeline: from loading its settings to the end of
the run, as in its summary, so Beam's start-up is in; old script: from listing partitions to the
last batch; ceiling: the writes only) and ``rows_per_second`` is N over it; ``wall_seconds`` is
the whole subprocess including interpreter start-up; ``peak_rss_mib`` the peak of the summed
resident memory of the subprocess and its children, sampled every 50 ms
(``largest_process_rss_mib`` is the largest kernel high-water mark, ``VmHWM``, of any one of
them, read at the same samples; not ``wait4``'s ``ru_maxrss``, which a child inherits from this
process's own peak when it starts the program). A pipeline run also
reports ``copy_seconds``, its summary's first-read-to-last-write time. ``cassandra_cpu_seconds``
is what the local Cassandra nodes spent during the run (``cassandra_cpu_seconds_by_host`` per
node); ``cpu_seconds`` is the contender's whole process tree's (start-up included), and both are
also given per million rows (``client_cpu_seconds_per_million_rows``,
``cassandra_cpu_seconds_per_million_rows`` and ``..._by_host``), the figures to compare between
contenders and table sizes. ``cassandra_background_cpu_cores`` is what the nodes spent per
second before the first contender, with nothing running (flushes, compaction, gossip).
``other_cpu_seconds`` is the CPU time that processes other than the contender and the two
Cassandra nodes took during the run: when it is large, someone else was using the machine and
the timing is suspect.

The keyspace (``bench_<shape>_<rows>_<random>`` unless ``--keyspace``) is dropped at the end
unless ``--keep``; a kept table with N rows is reused by a later run given the same keyspace.
Before the first contender the source node must have run no compaction on the keyspace for 5 s
(``settle_seconds``): a table just filled is compacted for minutes, which the first contenders
would otherwise share the node with.
Exit code 0 when every contender verified N rows in every run, 1 otherwise (a ceiling method
that fails is reported, and does not count towards the ceiling). The logs of failed runs are
kept in the scratch folder, whose path is printed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from bench import cluster, peers
from bench.write_ceiling import METHODS as CEILING_METHODS
from tools import sample_data

CONTENDERS = ("write_ceiling", "read_floor", "pipeline_default", "validate", "pipeline_best",
              "old_script", *peers.PEERS)
SHAPES = ("narrow", "wide", "kilobyte")
TABLE = "events"
REPOSITORY = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
MIB = 1024 * 1024
MILLION = 1_000_000
# Other processes' CPU time, as a share of one core over the run, that makes a timing suspect.
DISTURBED_SHARE = 0.15


# --------------------------------------------------------------------------- measuring a process

@dataclass
class Measurement:
    """How one subprocess went: exit code, wall time, memory and where the CPU time went."""

    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    largest_process_rss_bytes: int
    cpu_seconds: float
    server_cpu_by_host: dict[str, float]
    other_cpu_seconds: float
    stderr_path: Path
    timed_out: bool = False

    @property
    def server_cpu_seconds(self) -> float | None:
        return sum(self.server_cpu_by_host.values()) if self.server_cpu_by_host else None

    def stderr_tail(self, lines: int = 15) -> str:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _high_water_rss(process: psutil.Process) -> int:
    """The kernel's peak resident bytes of one process since it started its program (Linux
    ``VmHWM``; its current RSS where that is not available)."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return process.memory_info().rss


def _tree_sample(process: psutil.Process, cpu_seen: dict[tuple[int, float], float]
                 ) -> tuple[int, int]:
    """Resident bytes of a process and all its descendants now, and the largest high-water mark
    of any one of them; records each one's own CPU seconds so far in ``cpu_seen`` (by pid and
    start time, so that a reused pid is another process)."""
    total = largest = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for member in members:
        try:
            total += member.memory_info().rss
            largest = max(largest, _high_water_rss(member))
            times = member.cpu_times()
            cpu_seen[(member.pid, member.create_time())] = times.user + times.system
        except psutil.Error:  # ended between the listing and the reading
            pass
    return total, largest


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (guest time is in user)."""
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0)
               for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _cpu_seconds(processes: list[psutil.Process]) -> float | None:
    try:
        return sum(sum(process.cpu_times()[:2]) for process in processes)
    except psutil.Error:
        return None


def server_processes(hosts: list[str], port: int = 9042) -> dict[str, psutil.Process]:
    """The local processes listening on the clusters' native port, by address (none for remote
    clusters)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return {}
    return {connection.laddr.ip: psutil.Process(connection.pid) for connection in connections
            if connection.status == psutil.CONN_LISTEN and connection.pid
            and connection.laddr.port == port and connection.laddr.ip in hosts}


def _cpu_by_host(servers: dict[str, psutil.Process]) -> dict[str, float | None]:
    """CPU seconds each server process has spent so far (None where it cannot be read)."""
    return {host: _cpu_seconds([process]) for host, process in servers.items()}


def _cpu_spent(before: dict[str, float | None], after: dict[str, float | None]
               ) -> dict[str, float] | None:
    """CPU seconds each server spent between two ``_cpu_by_host`` readings; None if one of
    them could not be read."""
    if None in (*before.values(), *after.values()):
        return None
    return {host: after[host] - before[host] for host in before}


def background_cpu_cores(servers: dict[str, psutil.Process], seconds: float = 5.0
                         ) -> dict[str, float] | None:
    """Cores each Cassandra node uses while no contender runs (flushes, compaction, gossip):
    a run of ``s`` seconds pays about ``s`` times this in its ``cassandra_cpu_seconds``."""
    if not servers:
        return None
    before = _cpu_by_host(servers)
    time.sleep(seconds)
    spent = _cpu_spent(before, _cpu_by_host(servers))
    if spent is None:
        return None
    return {host: round(cpu / seconds, 3) for host, cpu in spent.items()}


def measure(command: list[str], log_prefix: Path, timeout: float,
            servers: dict[str, psutil.Process] | None = None, cwd: Path = REPOSITORY
            ) -> Measurement:
    """Run ``command`` in ``cwd``; sample its memory until it ends.

    The child leads its own process group, so a timeout stops it and every process it started.
    ``os.wait4`` gives the CPU time of the child and of every descendant that was waited for
    (``multiprocessing`` joins its workers, as cqlsh's COPY does; a shell waits for its
    commands). A descendant nobody waits for (killed and left a zombie, or daemonised) is not
    in it: each process's own CPU time is therefore also sampled with the memory, and the tree's
    CPU seconds are the larger of the two sums, each of which can only miss some (the sampled
    one the last 50 ms of each process). Memory is sampled: the summed RSS of the tree and each
    process's high-water mark (monotonic, so only a peak in the last sample interval can be
    missed). ``wait4``'s ``ru_maxrss`` is not used: on Linux a child keeps the peak of
    the process that started it (measured: 314 MiB for ``python -c pass`` started by a process
    of 300 MiB), so it would report this process's memory, not the contender's. The machine's
    busy CPU time less that of the child and of the ``servers`` (the Cassandra nodes) is what
    other processes took meanwhile: a disturbance if it is large.
    """
    stdout_path, stderr_path = Path(f"{log_prefix}.stdout"), Path(f"{log_prefix}.stderr")
    servers = servers or {}
    watchers = [psutil.Process(), *servers.values()]  # this process samples: no disturbance
    busy_before, watchers_before = _busy_cpu_seconds(), _cpu_seconds(watchers)
    by_host_before = _cpu_by_host(servers)
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr,
                                 start_new_session=True)
        tree = psutil.Process(child.pid)
        peak = largest = 0
        cpu_seen: dict[tuple[int, float], float] = {}
        timed_out = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            summed, high_water = _tree_sample(tree, cpu_seen)
            peak, largest = max(peak, summed), max(largest, high_water)
            if not timed_out and time.perf_counter() - started > timeout:
                timed_out = True
                os.killpg(child.pid, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    busy = _busy_cpu_seconds() - busy_before
    watchers_after = _cpu_seconds(watchers)
    by_host = _cpu_spent(by_host_before, _cpu_by_host(servers)) or {}
    watched_cpu = (watchers_after - watchers_before
                   if None not in (watchers_before, watchers_after) else 0.0)
    child_cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_seen.values()))
    child.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(child.returncode, wall, max(peak, largest), largest, child_cpu,
                       by_host, max(0.0, busy - child_cpu - watched_cpu),
                       stderr_path, timed_out)


# --------------------------------------------------------------------------- runs and contenders

def _shown(command: list[str]) -> list[str]:
    """A command as a person would type it: ``python`` rather than the venv's full path."""
    return ["python" if part == sys.executable else part for part in command]


def _child_result(run_dir: Path) -> dict:
    """The figures a bench program wrote to its result file."""
    return json.loads((run_dir / "result.json").read_text(encoding="utf-8"))


def _summary_facts(path: Path, what: str, success: str, keys: tuple[str, ...]) -> dict:
    """The figures of a pipeline run from the summary it wrote: its time, its status (an
    error unless ``success``) and ``keys`` of its first table."""
    summary = json.loads(path.read_text(encoding="utf-8"))
    table = summary["tables"][0] if summary["tables"] else {}
    facts = {"seconds": summary["seconds"], "copy_seconds": table.get("seconds"),
             "pipeline_status": summary["status"], **{key: table.get(key) for key in keys}}
    if summary["status"] != success:
        facts["error"] = f"the {what}'s summary says {summary['status']}"
    return facts


def _pipeline_result(run_dir: Path) -> dict:
    """The figures of a migration, from the SUMMARY_FILE it wrote."""
    return _summary_facts(run_dir / "summary.json", "pipeline", "success", (
        "rows_read", "rows_written", "rows_failed", "write_retries", "batch_fallbacks"))


def _validation_result(run_dir: Path) -> dict:
    """The figures of a validation, from the VALIDATION_SUMMARY_FILE it wrote."""
    return _summary_facts(run_dir / "validation.json", "validation", "valid", (
        "valid", "missing", "extra", "mismatched", "rows_read_source", "rows_read_target"))


def _best_of(runs: list[dict]) -> dict:
    """One contender's figures: its fastest run, flagged failed if any run failed.

    The peak memory is the highest of all runs; with ``--repeat`` every run is listed too.
    """
    verified = [run for run in runs if run["ok"]]
    best = dict(max(verified, key=lambda run: run["rows_per_second"]) if verified else runs[0])
    best["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    if len(verified) < len(runs):
        best["ok"] = False
        best["rows_per_second"] = None
        best["error"] = next(run["error"] for run in runs if not run["ok"])
    if len(runs) > 1:
        keys = ("seconds", "copy_seconds", "wall_seconds", "rows_per_second", "peak_rss_mib",
                "rows_verified", "ok", "client_cpu_seconds_per_million_rows",
                "cassandra_cpu_seconds_per_million_rows", "other_cpu_seconds")
        best["runs"] = [{key: run[key] for key in keys if key in run} for run in runs]
    return best


@dataclass
class Bench:
    """What every run needs: the command line's choices, the two sessions, a scratch folder."""

    args: argparse.Namespace
    keyspace: str
    source: object
    target: object
    workdir: Path
    servers: dict[str, psutil.Process]
    pipeline_dir: Path = REPOSITORY
    failed_runs: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.args.rows

    def run(self, name: str, command_for, result_of, cwd: Path = REPOSITORY,
            counted=None, truncate: bool = True) -> dict:
        """Truncate the target, run one contender once, count the target, report the run.

        ``command_for(run_dir)`` writes what the run needs into its folder and returns the
        command; ``result_of(run_dir)`` returns the contender's own figures, at least
        ``seconds`` (its timed work). A contender that only reads gives ``counted(facts)``,
        the rows it reports, to check instead of the target.
        """
        if truncate:
            self.target.execute(f"TRUNCATE {self.keyspace}.{TABLE}")
        run_dir = Path(tempfile.mkdtemp(prefix=f"{name.replace('/', '-')}-", dir=self.workdir))
        command = command_for(run_dir)
        load = os.getloadavg()[0]
        measurement = measure(command, run_dir / "process", self.args.timeout, self.servers,
                              cwd)
        try:
            facts = result_of(run_dir)
        except (OSError, ValueError, KeyError, IndexError) as error:
            facts = {"error": f"no result ({type(error).__name__}: {error})"}
        verified = (counted(facts) if counted is not None
                    else cluster.count_rows(self.target, self.keyspace, TABLE))
        errors = []
        if measurement.timed_out:
            errors.append(f"stopped after {self.args.timeout:.0f}s")
        elif measurement.returncode != 0:
            errors.append(f"exit code {measurement.returncode}")
        if facts.get("error"):
            errors.append(facts.pop("error"))
        if verified != self.rows:
            errors.append(f"{'it read' if counted else 'the target holds'} {verified or 0:,} "
                          f"rows, not {self.rows:,}")
        if errors and measurement.returncode != 0:
            errors.append("its stderr ends with:\n" + measurement.stderr_tail())
        seconds = facts.pop("seconds", None)
        per_million = MILLION / self.rows
        server_cpu = measurement.server_cpu_seconds
        run = {
            "seconds": round(seconds, 3) if seconds else None,
            "wall_seconds": round(measurement.wall_seconds, 3),
            "rows_per_second": round(self.rows / seconds, 1) if seconds and not errors else None,
            "peak_rss_mib": round(measurement.peak_rss_bytes / MIB, 1),
            "largest_process_rss_mib": round(measurement.largest_process_rss_bytes / MIB, 1),
            "rows_verified": verified,
            "ok": not errors,
            "cpu_seconds": round(measurement.cpu_seconds, 1),
            "cassandra_cpu_seconds": (round(measurement.server_cpu_seconds, 1)
                                      if measurement.server_cpu_seconds is not None else None),
            "cassandra_cpu_seconds_by_host": {host: round(seconds, 1) for host, seconds
                                              in measurement.server_cpu_by_host.items()},
            "client_cpu_seconds_per_million_rows": round(measurement.cpu_seconds * per_million, 1),
            "cassandra_cpu_seconds_per_million_rows": (round(server_cpu * per_million, 1)
                                                       if server_cpu is not None else None),
            "cassandra_cpu_seconds_per_million_rows_by_host": {
                host: round(seconds * per_million, 1)
                for host, seconds in measurement.server_cpu_by_host.items()},
            "other_cpu_seconds": round(measurement.other_cpu_seconds, 1),
            "load_average_before": round(load, 2),
            "command": shlex.join(_shown(command)),
            **facts,
        }
        if errors:
            run["error"] = "; ".join(errors)
            run["logs"] = str(run_dir)
            self.failed_runs.append(name)
        status = (f"{run['rows_per_second']:,.0f} rows/s" if run["ok"]
                  else f"FAILED ({run['error'].splitlines()[0]})")
        disturbed = measurement.other_cpu_seconds > max(1.0, DISTURBED_SHARE
                                                        * measurement.wall_seconds)
        print(f"  {name}: {status}, {run['wall_seconds']:.1f}s wall, "
              f"{run['cpu_seconds']:.1f} CPU-s, peak {run['peak_rss_mib']:,.0f} MiB, "
              f"{verified:,} rows on the target"
              + (f"; other processes took {run['other_cpu_seconds']:.1f} CPU-s meanwhile, "
                 "the timing may be disturbed" if disturbed else ""), flush=True)
        return run

    def repeated(self, name: str, command_for, result_of, cwd: Path = REPOSITORY,
                 counted=None, truncate: bool = True) -> dict:
        return _best_of([self.run(name, command_for, result_of, cwd, counted, truncate)
                         for _ in range(self.args.repeat)])

    def pipeline(self, name: str, overrides: list[str], beam_args: list[str],
                 module: str = "pipelines.migrate") -> dict:
        """``python -m pipelines.migrate`` (or ``pipelines.validate``) with a settings file of
        defaults, plus overrides."""

        def command_for(run_dir: Path) -> list[str]:
            document = {
                "SOURCE": {"HOSTS": [self.args.source_host], "KEYSPACE": self.keyspace},
                "TARGET": {"HOSTS": [self.args.target_host], "KEYSPACE": self.keyspace},
                "TABLES": [TABLE],
                "LOG_FILE": str(run_dir / "migrator.log"),
                "SUMMARY_FILE": str(run_dir / "summary.json"),
                "FAILED_ROWS_DIR": str(run_dir / "failed_rows"),
                "VALIDATION_SUMMARY_FILE": str(run_dir / "validation.json"),
                "DIFFERENCES_DIR": str(run_dir / "differences"),
            }
            settings = run_dir / "migrator_settings.yaml"
            settings.write_text(yaml.safe_dump(document), encoding="utf-8")
            command = [sys.executable, "-m", module, "--config", str(settings)]
            for assignment in overrides:
                command += ["--set", assignment]
            return command + beam_args

        if module == "pipelines.validate":
            report = self.repeated(name, command_for, _validation_result, self.pipeline_dir,
                                   counted=lambda facts: facts.get("valid"), truncate=False)
        else:
            report = self.repeated(name, command_for, _pipeline_result, self.pipeline_dir)
        return {**report, "settings": overrides, "beam_args": beam_args}

    def write_ceiling(self) -> dict:
        """Every method of ``bench.write_ceiling`` in turn; the fastest verified one counts."""
        methods = {}
        for method in self.args.ceiling_methods:
            def command_for(run_dir: Path, method: str = method) -> list[str]:
                return [sys.executable, "-m", "bench.write_ceiling",
                        "--host", self.args.target_host, "--keyspace", self.keyspace,
                        "--table", TABLE, "--rows", str(self.rows), "--shape", self.args.shape,
                        "--method", method, "--result", str(run_dir / "result.json")]

            methods[method] = self.repeated(f"write_ceiling/{method}", command_for, _child_result)
        verified = [method for method, report in methods.items() if report["ok"]]
        if not verified:
            return {**methods[self.args.ceiling_methods[0]], "method": None, "methods": methods}
        best = max(verified, key=lambda method: methods[method]["rows_per_second"])
        return {**methods[best], "method": best, "methods": methods}

    def read_floor(self) -> dict:
        """``bench.read_floor``: the source read as the pipeline must read it (the default
        FETCH_BATCH_SIZE, writetimes and TTLs), rows discarded."""

        def command_for(run_dir: Path) -> list[str]:
            return [sys.executable, "-m", "bench.read_floor", "--host", self.args.source_host,
                    "--keyspace", self.keyspace, "--table", TABLE,
                    "--result", str(run_dir / "result.json")]

        return self.repeated("read_floor", command_for, _child_result,
                             counted=lambda facts: facts.get("rows_read"))

    def old_script(self) -> dict:
        def command_for(run_dir: Path) -> list[str]:
            return [sys.executable, "-m", "bench.old_script",
                    "--source-host", self.args.source_host,
                    "--target-host", self.args.target_host, "--keyspace", self.keyspace,
                    "--table", TABLE, "--batch-size", str(self.args.old_batch_size),
                    "--result", str(run_dir / "result.json")]

        return self.repeated("old_script", command_for, _child_result)

    def peer(self, name: str) -> dict:
        """``bench.peers``: cqlsh COPY or dsbulk, an export to CSV in the run's folder and an
        import of it, timed together. dsbulk's jars are fetched first when missing (untimed)."""
        fetch_error = None
        if name == "dsbulk":
            try:
                peers.ensure_dsbulk()
            except peers.PeerError as error:
                fetch_error = str(error)

        def command_for(run_dir: Path) -> list[str]:
            return [sys.executable, "-m", "bench.peers", name,
                    "--source-host", self.args.source_host,
                    "--target-host", self.args.target_host, "--keyspace", self.keyspace,
                    "--table", TABLE, "--workdir", str(run_dir / "work"),
                    "--result", str(run_dir / "result.json")]

        def result_of(run_dir: Path) -> dict:
            facts = _child_result(run_dir)
            if fetch_error:
                facts["error"] = fetch_error
            elif peers.VECTOR_EXPLANATION in facts.get("error", ""):
                found = {side: cluster.vector_columns(session)
                         for side, session in (("source", self.source), ("target", self.target))}
                facts["error"] += "; vector columns now: " + ", ".join(
                    f"on the {side} {' '.join(columns) or 'none'}"
                    for side, columns in found.items())
            return facts

        return self.repeated(name, command_for, result_of)


# --------------------------------------------------------------------------- set-up and report

def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True,
                          check=True).stdout.strip()


def pipeline_code(revision: str | None, workdir: Path) -> tuple[Path, dict]:
    """Where the pipeline runs from, and which code that is.

    By default the working tree, whatever it holds; with a revision, ``pipelines`` and
    ``transforms`` of that commit exported into ``workdir`` (``python -m`` finds them there
    before the editable install), so that edits in progress cannot change what is measured.
    """
    if revision is None:
        changed = _git("status", "--porcelain", "--", "pipelines", "transforms")
        return REPOSITORY, {"revision": _git("rev-parse", "HEAD"), "working_tree": True,
                            "uncommitted_changes": bool(changed)}
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    directory = workdir / f"code-{commit[:12]}"
    directory.mkdir()
    archive = subprocess.run(["git", "archive", commit, "pipelines", "transforms"],
                             cwd=REPOSITORY, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory, {"revision": commit, "working_tree": False}


def prepare_tables(source, target, keyspace: str, rows: int, shape: str) -> dict:
    """The source table with ``rows`` rows of ``shape`` (reused if it has them), the target's."""
    for session in (source, target):
        cluster.create_keyspace(session, keyspace)
        sample_data.create_table(session, keyspace, TABLE)
    existing = cluster.count_rows(source, keyspace, TABLE)
    if existing == rows:
        print(f"reusing {keyspace}.{TABLE} on the source: it holds {rows:,} rows", flush=True)
        facts = {"reused": True}
    else:
        if existing:
            source.execute(f"TRUNCATE {keyspace}.{TABLE}")
        print(f"filling {keyspace}.{TABLE} on the source with {rows:,} {shape} rows", flush=True)
        started = time.perf_counter()
        sample_data.fill_table(source, keyspace, TABLE, rows, shape)
        facts = {"reused": False, "fill_seconds": round(time.perf_counter() - started, 1)}
    # Contenders start once the source has finished compacting what the fill wrote.
    facts["settle_seconds"] = round(cluster.settle(source, keyspace), 1)
    print(f"the source settled after {facts['settle_seconds']:.0f}s", flush=True)
    return facts


def machine(source, target) -> dict:
    """The machine and the software the figures were measured with."""
    import cassandra

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    release = "SELECT release_version FROM system.local"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "apache_beam": importlib.metadata.version("apache-beam"),
        "cassandra_driver": cassandra.__version__,
        "cassandra_source": source.execute(release).one()[0],
        "cassandra_target": target.execute(release).one()[0],
    }


def copy_bound(contenders: dict, rows: int, cores: int) -> dict | None:
    """The rows/s of a copier that did no more work than the write ceiling's writing plus the
    read floor's reading (their own CPU seconds while timed, and the Cassandra nodes'), spread
    perfectly over the machine's cores. The nodes' CPU seconds are taken over each whole
    subprocess, so the bound is a little low rather than high."""
    ceiling, floor = contenders.get("write_ceiling"), contenders.get("read_floor")
    if not (ceiling and floor and ceiling["ok"] and floor["ok"]):
        return None
    parts = {"write_client": ceiling.get("cpu_seconds_timed"),
             "write_cassandra": ceiling.get("cassandra_cpu_seconds"),
             "read_client": floor.get("cpu_seconds_timed"),
             "read_cassandra": floor.get("cassandra_cpu_seconds")}
    if any(value is None for value in parts.values()):
        return None
    cpu_seconds = round(sum(parts.values()), 3)
    return {"cpu_seconds": {**parts, "total": cpu_seconds}, "cores": cores,
            "rows_per_second": round(rows / (cpu_seconds / cores), 1)}


def ratios(contenders: dict, bound: dict | None = None) -> dict:
    """Pipeline rows/s over the ceiling's and the copy bound's (fractions) and over the old
    script's, cqlsh COPY's and dsbulk's (speed-ups when above 1)."""
    def speed(name):
        figures = bound if name == "copy_bound" else contenders.get(name)
        return (figures or {}).get("rows_per_second")

    result = {}
    for pipeline in ("pipeline_default", "pipeline_best"):
        for other in ("write_ceiling", "copy_bound", "old_script", *peers.PEERS,
                      "pipeline_default"):
            if pipeline != other and speed(pipeline) and speed(other):
                result[f"{pipeline}_to_{other}"] = round(speed(pipeline) / speed(other), 3)
    if speed("validate") and speed("pipeline_default"):
        # The time a validation takes for each second the migration took.
        result["validate_time_to_pipeline_default_time"] = round(
            speed("pipeline_default") / speed("validate"), 3)
    return result


def _cassandra_cpu_per_million(figures: dict, hosts: list[str]) -> str:
    """The nodes' CPU seconds per million rows: the total, then each node's (source first)."""
    total = figures.get("cassandra_cpu_seconds_per_million_rows")
    if total is None:
        return "-"
    by_host = figures.get("cassandra_cpu_seconds_per_million_rows_by_host") or {}
    ordered = [host for host in hosts if host in by_host]
    ordered += [host for host in by_host if host not in ordered]
    if len(ordered) < 2:
        return f"{total:,.0f}"
    return f"{total:,.0f} ({' + '.join(f'{by_host[host]:,.0f}' for host in ordered)})"


def format_report(report: dict) -> str:
    header = ("contender", "rows/s", "seconds", "wall s", "peak RSS MiB",
              "client CPU-s/1M rows", "Cassandra CPU-s/1M rows (source + target)",
              "rows on target", "verified")
    hosts = [report.get("source_host"), report.get("target_host")]
    lines = [header]
    for name, figures in report["contenders"].items():
        label = f"{name} ({figures['method']})" if figures.get("method") else name
        speed = figures["rows_per_second"]
        client_cpu = figures.get("client_cpu_seconds_per_million_rows")
        lines.append((label, f"{speed:,.0f}" if speed else "-",
                      f"{figures['seconds']:.1f}" if figures.get("seconds") else "-",
                      f"{figures['wall_seconds']:.1f}", f"{figures['peak_rss_mib']:,.0f}",
                      f"{client_cpu:,.0f}" if client_cpu is not None else "-",
                      _cassandra_cpu_per_million(figures, hosts),
                      f"{figures['rows_verified']:,}", "yes" if figures["ok"] else "NO"))
    widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    bound = report.get("copy_bound")
    if bound:
        text.append(f"copy bound: {bound['rows_per_second']:,.0f} rows/s "
                    f"({bound['cpu_seconds']['total']:.1f} CPU-s of writing and reading "
                    f"over {bound['cores']} cores)")
    text += [f"{name}: {value:.3f}" for name, value in report["ratios"].items()]
    for name, figures in report["contenders"].items():
        if not figures["ok"]:
            text.append(f"{name} FAILED: {figures['error']}")
        for method, method_figures in figures.get("methods", {}).items():
            if not method_figures["ok"]:
                text.append(f"{name}/{method} FAILED (not counted): "
                            f"{method_figures['error'].splitlines()[0]}")
    return "\n".join(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        epilog="Beam options for the best run need the = form: --best-arg=--direct_num_workers=2")
    parser.add_argument("--rows", type=int, required=True, help="rows in the source table")
    parser.add_argument("--shape", choices=SHAPES, required=True)
    parser.add_argument("--output", type=Path,
                        help="JSON file of the figures (default bench/results/SHAPE_ROWS.json)")
    parser.add_argument("--best-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the best pipeline run (repeatable)")
    parser.add_argument("--best-arg", action="append", default=[], metavar="BEAM_OPTION",
                        help="a Beam option of the best pipeline run (repeatable)")
    parser.add_argument("--skip", action="extend", nargs="+", default=[], choices=CONTENDERS,
                        help="contenders not to run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per contender; the fastest counts (default 1)")
    parser.add_argument("--ceiling-methods", nargs="+", choices=CEILING_METHODS,
                        default=list(CEILING_METHODS),
                        help="the write ceiling's methods to run (default: all; the best counts)")
    parser.add_argument("--old-batch-size", type=int, default=50,
                        help="rows per batch of the old script (default 50, as it had; "
                             "50 rows of 1 KB exceed Cassandra's 50 KiB batch limit)")
    parser.add_argument("--source-host", default="127.0.0.1")
    parser.add_argument("--target-host", default="127.0.0.2")
    parser.add_argument("--keyspace", help="default bench_<shape>_<rows>_<random>")
    parser.add_argument("--keep", action="store_true",
                        help="keep the keyspace (a later run with --keyspace reuses the table)")
    parser.add_argument("--pipeline-revision", metavar="GIT_REVISION",
                        help="measure the pipeline of this commit (default: the working tree)")
    parser.add_argument("--timeout", type=float, default=7200.0,
                        help="seconds one run may take before it is stopped (default 7200)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    for assignment in args.best_set:
        if "=" not in assignment:
            parser.error(f"--best-set {assignment}: expected KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    keyspace = args.keyspace or f"bench_{args.shape}_{args.rows}_{uuid.uuid4().hex[:6]}"
    output = args.output or REPOSITORY / "bench" / "results" / f"{args.shape}_{args.rows}.json"
    source = cluster.connect(args.source_host)
    target = cluster.connect(args.target_host)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    pipeline_dir, code = pipeline_code(args.pipeline_revision, workdir)
    contenders: dict[str, dict] = {}
    skipped = {name: "--skip" for name in args.skip}
    if not (args.best_set or args.best_arg) and "pipeline_best" not in skipped:
        skipped["pipeline_best"] = "no --best-set or --best-arg given"
    bench = None
    try:
        source_facts = prepare_tables(source, target, keyspace, args.rows, args.shape)
        servers = server_processes([args.source_host, args.target_host])
        bench = Bench(args, keyspace, source, target, workdir, servers, pipeline_dir)
        background = background_cpu_cores(servers)
        for name in CONTENDERS:
            if name in skipped:
                continue
            print(f"{name}:", flush=True)
            if name == "write_ceiling":
                contenders[name] = bench.write_ceiling()
            elif name == "old_script":
                contenders[name] = bench.old_script()
            elif name == "read_floor":
                contenders[name] = bench.read_floor()
            elif name == "pipeline_default":
                contenders[name] = bench.pipeline(name, [], [])
            elif name == "validate":
                contenders[name] = bench.pipeline(name, [], [], "pipelines.validate")
            elif name in peers.PEERS:
                contenders[name] = bench.peer(name)
            else:
                contenders[name] = bench.pipeline(name, args.best_set, args.best_arg)
        bound = copy_bound(contenders, args.rows, os.cpu_count() or 1)
        report = {
            "command": shlex.join(["python", "-m", "bench.run", *argv]),
            "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "machine": machine(source, target),
            "pipeline_code": code,
            "rows": args.rows,
            "shape": args.shape,
            "keyspace": keyspace,
            "source_host": args.source_host,
            "target_host": args.target_host,
            "source_table": source_facts,
            "cassandra_background_cpu_cores": background,
            "contenders": contenders,
            "copy_bound": bound,
            "ratios": ratios(contenders, bound),
            "skipped": skipped,
        }
    finally:
        if not args.keep:
            for session in (source, target):
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        source.cluster.shutdown()
        target.cluster.shutdown()
    print(format_report(report))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {output}")
    if bench is not None and bench.failed_runs:
        print(f"the logs of the failed runs ({', '.join(sorted(set(bench.failed_runs)))}) "
              f"are kept under {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(not figures["ok"] for figures in contenders.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
