"""A standalone Flink session cluster on loopback, every part its own process, from Maven jars.

What a real Flink deployment is, in miniature: a JobManager
(``StandaloneSessionClusterEntrypoint``, with its REST port), one or more TaskManagers
(``TaskManagerRunner``), a Python SDK worker pool (``pipelines.sdk_worker pool``, Beam's
EXTERNAL environment) and Beam's Flink job server submitting to the JobManager. The launching
Python process only submits the pipeline and reads the result: no pipeline code runs in it,
unlike ``tools.flink_runner``'s embedded Flink with LOOPBACK workers.

The Flink 1.19.0 jars are the ones ``tools.flink_runner`` fetches for the job server (Maven
Central serves no ``flink-dist``; ``flink-runtime`` holds both entry points). Each process runs
with a small heap and logs to its own file under ``.local/flink/clusters/<rest port>/``.

    python -m tools.flink_cluster start [--taskmanagers 1] [--slots 2]   # prints the options
    python -m tools.flink_cluster status
    python -m tools.flink_cluster stop        # only the processes ``start`` recorded

``start`` leaves the cluster running and records its processes in ``cluster.json``; ``stop``
ends exactly those (a recorded pid is ended only if its command line is still ours).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools import flink_runner
from tools.flink_runner import CACHE_DIR, JAVA17_FLAGS, FlinkRunnerError

CLUSTERS_DIR = CACHE_DIR / "clusters"
JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
START_TIMEOUT_SECONDS = 120.0

# TaskManager memory, set component by component so Flink derives nothing from a process size
# (its start scripts would compute the JVM flags; here they follow from these figures).
_TM_FRAMEWORK_HEAP_MB = 128
_TM_TASK_HEAP_MB = 192
_TM_FRAMEWORK_OFF_HEAP_MB = 128
_TM_NETWORK_MB = 64
_TM_MANAGED_MB = 64
_TM_METASPACE_MB = 192
_JM_HEAP = "512m"


class FlinkClusterError(FlinkRunnerError):
    """A part of the local Flink cluster could not start; the message says which and why."""


@dataclass
class _Part:
    """One process of the cluster."""

    name: str
    command: list[str]
    log_path: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self, cwd: Path) -> None:
        with open(self.log_path, "ab") as log:
            # Its own session: stop() ends the process group, so a worker pool's SDK workers
            # end with it.
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=cwd,
                                            env={**os.environ, **self.environment},
                                            start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise FlinkClusterError("java is not on PATH: Flink needs Java 17")
    return java


def _classpath() -> str:
    lib = flink_runner.ensure_job_server_jar().parent / "lib"
    return os.pathsep.join(str(jar) for jar in sorted(lib.glob("*.jar")))


def _config(rest_port: int, rpc_port: int, slots: int, directory: Path) -> dict[str, object]:
    """Flink's config.yaml for every process of the cluster: loopback only, small memory."""
    tmp = directory / "tmp"
    return {
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": "127.0.0.1",
        "rest.address": "localhost",
        "rest.bind-address": "127.0.0.1",
        "rest.port": rest_port,
        "taskmanager.host": "localhost",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.cpu.cores": slots,
        "taskmanager.memory.framework.heap.size": f"{_TM_FRAMEWORK_HEAP_MB}m",
        "taskmanager.memory.task.heap.size": f"{_TM_TASK_HEAP_MB}m",
        "taskmanager.memory.framework.off-heap.size": f"{_TM_FRAMEWORK_OFF_HEAP_MB}m",
        "taskmanager.memory.task.off-heap.size": "0m",
        "taskmanager.memory.network.min": f"{_TM_NETWORK_MB}m",
        "taskmanager.memory.network.max": f"{_TM_NETWORK_MB}m",
        "taskmanager.memory.managed.size": f"{_TM_MANAGED_MB}m",
        # A blocking (batch) result partition takes 512 network buffers by default: a Beam
        # job has many, more than a small TaskManager holds.
        "taskmanager.network.sort-shuffle.min-buffers": 64,
        "taskmanager.memory.jvm-metaspace.size": f"{_TM_METASPACE_MB}m",
        "taskmanager.memory.jvm-overhead.min": "192m",
        "taskmanager.memory.jvm-overhead.max": "192m",
        "io.tmp.dirs": str(tmp),
        "blob.storage.directory": str(tmp),
        "web.tmpdir": str(tmp),
        "web.upload.dir": str(tmp),
        "parallelism.default": slots,
    }


def _jvm_flags(heap: str, log_level: str) -> list[str]:
    return [*JAVA17_FLAGS, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
            # The SDK workers' log records, relayed by the TaskManager (Fn API logging).
            "-Dorg.slf4j.simpleLogger.log.org.apache.beam.runners.fnexecution.logging=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"]


def _taskmanager_jvm_flags(log_level: str) -> list[str]:
    heap = f"{_TM_FRAMEWORK_HEAP_MB + _TM_TASK_HEAP_MB}m"
    return [*_jvm_flags(heap, log_level),
            f"-XX:MaxDirectMemorySize={_TM_FRAMEWORK_OFF_HEAP_MB + _TM_NETWORK_MB}m",
            f"-XX:MaxMetaspaceSize={_TM_METASPACE_MB}m"]


def _rest_json(rest_port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}{path}", timeout=2) as reply:
            return json.loads(reply.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


class LocalFlinkCluster:
    """JobManager, TaskManagers, SDK worker pool and job server, each its own process.

    ::

        with LocalFlinkCluster(taskmanagers=1, slots=2,
                               worker_environment={"TARGET_PASSWORD": ...}) as cluster:
            result = build(PipelineOptions(cluster.pipeline_args(parallelism=2))).run()

    ``worker_environment`` is added to the worker pool's environment only: what the SDK
    workers see, and the launcher does not. ``stop()`` ends only the processes this object
    started.
    """

    def __init__(self, *, taskmanagers: int = 1, slots: int = 2,
                 worker_environment: Mapping[str, str] | None = None,
                 log_level: str = "warn", start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        if taskmanagers < 1 or slots < 1:
            raise ValueError("a cluster needs at least one TaskManager with one slot")
        self.taskmanagers = taskmanagers
        self.slots = slots
        self.worker_environment = dict(worker_environment or {})
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.rest_port: int | None = None
        self.worker_pool_port: int | None = None
        self.directory: Path | None = None
        self.job_server: flink_runner.FlinkJobServer | None = None
        self._parts: list[_Part] = []

    # ----------------------------------------------------------------- addresses and options

    @property
    def flink_master(self) -> str:
        """The JobManager's REST address, what ``--flink_master`` takes."""
        if self.rest_port is None:
            raise FlinkClusterError("the local Flink cluster is not started")
        return f"localhost:{self.rest_port}"

    @property
    def worker_pool(self) -> str:
        self._require_started()
        return f"localhost:{self.worker_pool_port}"

    def pipeline_args(self, parallelism: int = 2) -> list[str]:
        """Options that send a pipeline to this cluster, its SDK workers in the worker pool."""
        self._require_started()
        return ["--runner=PortableRunner", f"--job_endpoint={self.job_server.endpoint}",
                "--environment_type=EXTERNAL", f"--environment_config={self.worker_pool}",
                f"--parallelism={parallelism}"]

    def pids(self) -> dict[str, int]:
        """The process id of each part started (``jobmanager``, ``taskmanager-1``, ...)."""
        found = {part.name: part.process.pid for part in self._parts if part.process}
        if self.job_server is not None and self.job_server.pid is not None:
            found["job-server"] = self.job_server.pid
        return found

    def log_paths(self) -> dict[str, Path]:
        paths = {part.name: part.log_path for part in self._parts}
        if self.job_server is not None and self.job_server.log_path is not None:
            paths["job-server"] = self.job_server.log_path
        return paths

    def log_tail(self, characters: int = 2000) -> str:
        """The end of every part's log, for a failed test's message."""
        return "\n".join(f"--- {name}: {path}\n{path.read_text(errors='replace')[-characters:]}"
                         for name, path in self.log_paths().items() if path.exists())

    def taskmanager_log(self) -> str:
        """Every TaskManager's log (the SDK workers' records are relayed there)."""
        return "".join(part.log_tail(10**9) for part in self._parts
                       if part.name.startswith("taskmanager"))

    def _require_started(self) -> None:
        if self.rest_port is None or self.job_server is None:
            raise FlinkClusterError("the local Flink cluster is not started")

    # ----------------------------------------------------------------- start and stop

    def start(self) -> LocalFlinkCluster:
        if self._parts:
            return self
        java = _java()
        classpath = _classpath()
        self.rest_port = flink_runner._free_port()
        rpc_port = flink_runner._free_port()
        self.worker_pool_port = flink_runner._free_port()
        self.directory = CLUSTERS_DIR / str(self.rest_port)
        shutil.rmtree(self.directory, ignore_errors=True)
        (self.directory / "conf").mkdir(parents=True)
        (self.directory / "tmp").mkdir()
        config = _config(self.rest_port, rpc_port, self.slots, self.directory)
        (self.directory / "conf" / "config.yaml").write_text(
            "".join(f"{key}: {value}\n" for key, value in config.items()))
        conf = ["--configDir", str(self.directory / "conf")]
        atexit.register(self.stop)
        try:
            self._launch(_Part("jobmanager", [java, *_jvm_flags(_JM_HEAP, self.log_level),
                                              "-cp", classpath, JOBMANAGER_CLASS, *conf],
                               self.directory / "jobmanager.log"))
            self._wait("the JobManager's REST port", "jobmanager",
                       lambda: _rest_json(self.rest_port, "/overview") is not None)
            for number in range(1, self.taskmanagers + 1):
                self._launch(_Part(f"taskmanager-{number}",
                                   [java, *_taskmanager_jvm_flags(self.log_level), "-cp",
                                    classpath, TASKMANAGER_CLASS, *conf,
                                    "-Dtaskmanager.resource-id=" + f"taskmanager-{number}"],
                                   self.directory / f"taskmanager-{number}.log"))
            self._launch(_Part("worker-pool",
                               [sys.executable, "-m", "pipelines.sdk_worker", "pool", "--port",
                                str(self.worker_pool_port)],
                               self.directory / "worker-pool.log", self.worker_environment))
            self._wait(f"{self.taskmanagers} TaskManager(s) registered", "taskmanager-1",
                       lambda: (_rest_json(self.rest_port, "/overview") or {}).get(
                           "taskmanagers", 0) >= self.taskmanagers)
            self._wait("the SDK worker pool's port", "worker-pool",
                       lambda: flink_runner._port_answers(self.worker_pool_port))
            self.job_server = flink_runner.FlinkJobServer(flink_master=self.flink_master)
            self.job_server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, part: _Part) -> None:
        self._parts.append(part)
        part.start(flink_runner.REPO_ROOT)

    def _wait(self, what: str, part_name: str, ready) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            for part in self._parts:
                if not part.alive():
                    raise FlinkClusterError(
                        f"the Flink {part.name} exited with code {part.process.returncode} "
                        f"while waiting for {what}; last lines of {part.log_path}:\n"
                        f"{part.log_tail()}")
            if time.monotonic() > deadline:
                part = next(p for p in self._parts if p.name == part_name)
                raise FlinkClusterError(
                    f"no {what} within {self.start_timeout:.0f}s; last lines of "
                    f"{part.log_path}:\n{part.log_tail()}")
            time.sleep(0.3)

    def stop(self, timeout: float = 20.0) -> None:
        """End the processes this object started: job server first, then the worker pool (and
        its SDK workers), the TaskManagers, the JobManager."""
        atexit.unregister(self.stop)
        if self.job_server is not None:
            self.job_server.stop()
        for part in reversed(self._parts):
            _end(part.process, timeout)
        self._parts = []

    def __enter__(self) -> LocalFlinkCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _end(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM to the process group this launcher made, SIGKILL after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- command line


def _state_file() -> Path:
    return CLUSTERS_DIR / "cluster.json"


def _is_ours(pid: int, markers: Sequence[str]) -> bool:
    """True when ``pid`` is alive and its command line holds every one of ``markers`` (our
    config dir, our job server's artifacts dir, our worker pool's port)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return all(any(marker in word for word in command) for marker in markers)


def _signal(pid: int, signal_number: int) -> None:
    """Signal a recorded process: its whole group when it leads one (what ``start`` makes)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal_number)
        else:
            os.kill(pid, signal_number)
    except ProcessLookupError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.flink_cluster",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a cluster and leave it running")
    start.add_argument("--taskmanagers", type=int, default=1)
    start.add_argument("--slots", type=int, default=2)
    start.add_argument("--log-level", default="warn")
    commands.add_parser("status", help="the recorded cluster: its processes and ports")
    commands.add_parser("stop", help="stop the processes `start` recorded")
    options = parser.parse_args(argv)
    state_file = _state_file()
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if options.command == "start":
        if state and any(_is_ours(pid, marker) for pid, marker in state["processes"]):
            print(f"error: a cluster started here is still running (REST port "
                  f"{state['rest_port']}); run `python -m tools.flink_cluster stop` first",
                  file=sys.stderr)
            return 1
        cluster = LocalFlinkCluster(taskmanagers=options.taskmanagers, slots=options.slots,
                                    log_level=options.log_level)
        try:
            cluster.start()
        except FlinkRunnerError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        atexit.unregister(cluster.stop)  # leave it running
        atexit.unregister(cluster.job_server.stop)
        markers = {"job-server": [str(cluster.job_server.artifacts_dir)],
                   "worker-pool": ["pipelines.sdk_worker", str(cluster.worker_pool_port)]}
        processes = [(pid, markers.get(name, [str(cluster.directory)]))
                     for name, pid in cluster.pids().items()]
        state_file.write_text(json.dumps({"rest_port": cluster.rest_port,
                                          "processes": processes,
                                          "pipeline_args": cluster.pipeline_args()}))
        print(f"Flink REST at http://localhost:{cluster.rest_port}; processes "
              + ", ".join(f"{name} {pid}" for name, pid in cluster.pids().items())
              + f"\nlogs in {cluster.directory}\npipeline options:\n  "
              + " ".join(cluster.pipeline_args()))
        return 0
    if state is None:
        print("no cluster was started here", file=sys.stderr if options.command == "stop"
              else sys.stdout)
        return 0
    if options.command == "status":
        for pid, marker in state["processes"]:
            print(f"pid {pid}: {'up' if _is_ours(pid, marker) else 'gone'}")
        print("pipeline options: " + " ".join(state["pipeline_args"]))
        return 0
    for pid, marker in state["processes"]:
        if _is_ours(pid, marker):
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while any(_is_ours(pid, marker) for pid, marker in state["processes"]):
        if time.monotonic() > deadline:
            for pid, marker in state["processes"]:
                if _is_ours(pid, marker):
                    _signal(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    state_file.unlink()
    print(f"stopped the cluster with REST port {state['rest_port']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
