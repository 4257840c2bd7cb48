"""Run this project's Beam pipelines on Apache Flink: embedded Flink, LOOPBACK Python workers.

Beam's Python SDK reaches Flink through a Java *job server* (``FlinkJobServerDriver``). With
``--flink-master=[local]`` that job server starts an embedded Flink mini cluster for each job,
and the LOOPBACK environment runs the Python SDK workers inside the launching Python process, so
nothing but Java 17 and Maven Central is needed: no Docker, no Flink distribution.

Which job server, and why not the one matching the installed ``apache_beam``:
the Maven Central that this project's machines and CI reach serves only part of Beam: none of
the shaded ``beam-runners-flink-<flink>-job-server`` jars, and no Beam Java release as new as
the Python SDK of ``requirements.lock``. The newest Beam Java release whose Flink runner
resolves there with every dependency is 2.62.0 (``beam-runners-flink-1.19``, bringing Flink
1.19.0); both are pinned in ``tools/pins.py``. ``tools/flink/pom.xml`` resolves it with
``mvn dependency:copy-dependencies`` into ``.local/flink/`` (git-ignored), and this module writes
a small launcher jar beside it whose manifest names the main class and the classpath, so
``java -jar`` (and Beam's ``--flink_job_server_jar``) can start it like the shaded jar. The
Python SDK (the lock's) and the job server (2.62) talk through the portable Job and Fn APIs;
``tests/test_flink_runner.py`` checks that the pair runs what this project uses (ParDo with
setup, Reshuffle, CombineGlobally, WriteToText, counters). An SDK feature newer than 2.62 that
needs the runner's support may not work.

Two ways to run a pipeline:

* ``FlinkJobServer`` (preferred for tests and repeated runs): starts one job server process with
  the JVM flags Flink needs on Java 17, hands out ``--runner=PortableRunner`` arguments for it,
  and stops the process it started. One JVM serves any number of pipelines.
* ``flink_pipeline_args()``: ``--runner=FlinkRunner`` arguments; Beam starts a job server for
  the run itself (JVM flags passed with ``--job_server_jvm_properties``). Beam keeps that JVM
  until the Python process exits, one per pipeline run.

Command line: ``python -m tools.flink_runner fetch | args | info | serve``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tools import pins
from tools.pins import MAVEN

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".local" / "flink"
POM = Path(__file__).resolve().parent / "flink" / "pom.xml"

#: Beam Java release of the job server (see the module docstring for why not the SDK's own).
JOB_SERVER_BEAM_VERSION = MAVEN["beam_flink_runner"]
#: Flink minor version of the runner artifact ``beam-runners-flink-<minor>``.
FLINK_VERSION = MAVEN["flink"]
JOB_SERVER_MAIN_CLASS = "org.apache.beam.runners.flink.FlinkJobServerDriver"

#: Flink's own Java 17 options (``env.java.opts.all`` in the config.yaml Flink 1.19 ships):
#: Flink's serializers and RPC reflect into these JDK packages.
JAVA17_FLAGS: tuple[str, ...] = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
)

DEFAULT_MAX_HEAP = "1g"
DEFAULT_LOG_LEVEL = "warn"
START_TIMEOUT_SECONDS = 120.0


class FlinkRunnerError(RuntimeError):
    """The Flink job server could not be fetched or started; the message says why."""


# --------------------------------------------------------------------------- versions, paths


def python_sdk_version() -> str:
    """The installed ``apache_beam`` version (the SDK that launches pipelines)."""
    try:
        from apache_beam.version import __version__
    except ImportError:
        return pins.beam_version()  # what make install puts in the venv
    return __version__


def job_server_dir(beam_version: str = JOB_SERVER_BEAM_VERSION,
                   flink_version: str = FLINK_VERSION) -> Path:
    """Cache directory of one job server release: ``lib/`` with its jars, and the launcher."""
    return CACHE_DIR / f"beam-{beam_version}-flink-{flink_version}"


def _launcher_path(directory: Path, beam_version: str, flink_version: str) -> Path:
    return directory / f"beam-runners-flink-{flink_version}-job-server-{beam_version}.jar"


# --------------------------------------------------------------------------- fetching


def ensure_job_server_jar(beam_version: str = JOB_SERVER_BEAM_VERSION,
                          flink_version: str = FLINK_VERSION) -> Path:
    """Return the job server launcher jar, fetching the jars with Maven on the first call.

    The launcher is a jar with only a manifest (``Main-Class`` and a ``Class-Path`` naming the
    jars in ``lib/`` beside it), usable wherever the shaded job server jar is: ``java -jar`` or
    ``--flink_job_server_jar``. It is written last, so its presence means a complete cache and a
    later call runs no Maven and downloads nothing.
    """
    directory = job_server_dir(beam_version, flink_version)
    launcher = _launcher_path(directory, beam_version, flink_version)
    if launcher.exists():
        return launcher
    directory.mkdir(parents=True, exist_ok=True)
    # One fetch at a time (parallel test processes); the loser finds the launcher written.
    with open(directory / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not launcher.exists():
            _fetch(directory, launcher, beam_version, flink_version)
    return launcher


def _fetch(directory: Path, launcher: Path, beam_version: str, flink_version: str) -> None:
    """Copy the runner and its runtime dependencies into ``lib/``, then write the launcher."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FlinkRunnerError("mvn (Apache Maven) is not on PATH: it is needed once to fetch "
                               f"Beam {beam_version}'s Flink {flink_version} job server jars "
                               "from Maven Central")
    runner_jar = f"beam-runners-flink-{flink_version}-{beam_version}.jar"
    staging = directory / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
               f"-Dbeam.version={beam_version}", f"-Dflink.minor={flink_version}",
               f"-Dslf4j.version={MAVEN['slf4j_simple']}"]
    print(f"fetching Beam {beam_version} Flink {flink_version} job server jars with Maven into "
          f"{directory}", file=sys.stderr)
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0 or not (staging / runner_jar).exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise FlinkRunnerError(
            f"Maven could not fetch org.apache.beam:beam-runners-flink-{flink_version}:"
            f"{beam_version} and its dependencies:\n"
            + (completed.stdout + completed.stderr)[-3000:])
    lib = directory / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    _write_launcher(launcher, sorted(path.name for path in lib.glob("*.jar")))


def _write_launcher(launcher: Path, jar_names: Sequence[str]) -> None:
    """Write a manifest-only jar whose Class-Path is ``lib/<each jar>`` (atomically)."""
    class_path = " ".join(f"lib/{name}" for name in jar_names)
    lines = ["Manifest-Version: 1.0", f"Main-Class: {JOB_SERVER_MAIN_CLASS}",
             f"Class-Path: {class_path}", "Created-By: tools/flink_runner.py"]
    manifest = "".join(_manifest_line(line) for line in lines) + "\r\n"
    partial = launcher.with_name(launcher.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as jar:
        jar.writestr("META-INF/MANIFEST.MF", manifest)
    partial.replace(launcher)


def _manifest_line(line: str) -> str:
    """One manifest header, wrapped as the JAR spec requires (72 bytes, continuation space)."""
    data = line.encode("utf-8")
    chunks = [data[:72]] + [b" " + data[start:start + 71] for start in range(72, len(data), 71)]
    return "".join(chunk.decode("utf-8") + "\r\n" for chunk in chunks)


# --------------------------------------------------------------------------- JVM and options


def job_server_jvm_flags(max_heap: str = DEFAULT_MAX_HEAP,
                         log_level: str = DEFAULT_LOG_LEVEL) -> list[str]:
    """JVM flags for the job server: Flink's Java 17 opens/exports, a heap cap, log level.

    ``log_level`` is SLF4J simple's (``trace``/``debug``/``info``/``warn``/``error``); the job
    server and the embedded Flink log through it to stderr.
    """
    return [*JAVA17_FLAGS, f"-Xmx{max_heap}", "-Djava.net.preferIPv4Stack=true",
            f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"]


def flink_pipeline_args(parallelism: int = 2, *, max_heap: str = DEFAULT_MAX_HEAP,
                        log_level: str = "error") -> list[str]:
    """Beam options that run a Python pipeline with ``FlinkRunner`` on embedded Flink.

    Beam starts the cached job server itself (``--flink_job_server_jar``) with the JVM flags of
    ``job_server_jvm_flags()`` (``--job_server_jvm_properties``, one per flag), and runs the
    Python SDK workers in this process (LOOPBACK). Fetches the jars on first use. Beam relays
    the job server's output into Python logging (logger ``FlinkJarJobServer``), hence the
    quieter default ``log_level``. Beam keeps each run's job server JVM until this Python
    process exits: for many runs in one process prefer ``FlinkJobServer``.
    """
    jar = ensure_job_server_jar()
    return ["--runner=FlinkRunner", f"--flink_version={FLINK_VERSION}",
            "--flink_master=[local]", f"--flink_job_server_jar={jar}",
            "--environment_type=LOOPBACK", f"--parallelism={parallelism}",
            *(f"--job_server_jvm_properties={flag}"
              for flag in job_server_jvm_flags(max_heap, log_level))]


def portable_pipeline_args(job_endpoint: str, parallelism: int = 2) -> list[str]:
    """Beam options that send a Python pipeline to a running Flink job server (LOOPBACK)."""
    return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
            "--environment_type=LOOPBACK", f"--parallelism={parallelism}"]


# --------------------------------------------------------------------------- job server process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _new_log_path(port: int, keep: int = 10) -> Path:
    """A log file for a job server on ``port``; only the newest ``keep`` logs are kept."""
    logs = CACHE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    old_logs = sorted(logs.glob("job-server-*.log"), key=lambda path: path.stat().st_mtime)
    for stale in old_logs[:max(0, len(old_logs) - keep + 1)]:
        stale.unlink(missing_ok=True)
    return logs / f"job-server-{port}.log"


class FlinkJobServer:
    """One Beam Flink job server process (embedded Flink), started and stopped by this object.

    Use as a context manager; ``endpoint`` is ``localhost:<port>`` once started, and
    ``pipeline_args()`` gives the options that send a pipeline to it::

        with FlinkJobServer() as server:
            result = build(PipelineOptions(server.pipeline_args(parallelism=2))).run()
            result.wait_until_finish()

    The job server and Flink log to ``log_path`` (``.local/flink/logs/``). ``stop()`` ends only
    the process this object started.
    """

    def __init__(self, *, port: int | None = None, max_heap: str = DEFAULT_MAX_HEAP,
                 log_level: str = DEFAULT_LOG_LEVEL,
                 start_timeout: float = START_TIMEOUT_SECONDS,
                 flink_master: str = "[local]") -> None:
        self.port = port
        self.flink_master = flink_master
        self.max_heap = max_heap
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.log_path: Path | None = None
        self._process: subprocess.Popen | None = None
        self._artifacts_dir: Path | None = None

    @property
    def endpoint(self) -> str:
        if self._process is None:
            raise FlinkRunnerError("the Flink job server is not started")
        return f"localhost:{self.port}"

    @property
    def artifacts_dir(self) -> Path | None:
        """Where the job server stages each job's artifacts (the Python SDK workers of a
        cluster on this machine read them from here)."""
        return self._artifacts_dir

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the process this object started is alive."""
        return self._process is not None and self._process.poll() is None

    def pipeline_args(self, parallelism: int = 2) -> list[str]:
        """``--runner=PortableRunner`` options for this job server, LOOPBACK workers."""
        return portable_pipeline_args(self.endpoint, parallelism)

    def start(self) -> str:
        """Start the job server (fetching the jars if needed); return its endpoint."""
        if self._process is not None:
            return self.endpoint
        java = shutil.which("java")
        if java is None:
            raise FlinkRunnerError("java is not on PATH: the Flink job server needs Java 17")
        launcher = ensure_job_server_jar()
        if self.port and _port_answers(self.port):
            raise FlinkRunnerError(f"port {self.port} is already in use: choose another, or "
                                   "none to take a free one")
        self.port = self.port or _free_port()
        self.log_path = _new_log_path(self.port)
        self._artifacts_dir = Path(tempfile.mkdtemp(prefix="artifacts-", dir=CACHE_DIR))
        command = [java, *job_server_jvm_flags(self.max_heap, self.log_level),
                   "-jar", str(launcher), f"--flink-master={self.flink_master}",
                   "--job-port", str(self.port), "--artifact-port", "0",
                   "--expansion-port", "0", "--artifacts-dir", str(self._artifacts_dir)]
        # Each job starts and stops a Flink mini cluster; with glibc's default malloc arenas the
        # process keeps growing by tens of MB per job (off heap), with two it levels off sooner.
        environment = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=CACHE_DIR,
                                             env=environment)
        atexit.register(self.stop)  # an interpreter that exits normally leaves no JVM behind
        deadline = time.monotonic() + self.start_timeout
        while not _port_answers(self.port):
            if self._process.poll() is not None:
                self._fail(f"exited with code {self._process.returncode} while starting")
            if time.monotonic() > deadline:
                self._fail(f"did not open port {self.port} within {self.start_timeout:.0f}s")
            time.sleep(0.2)
        return self.endpoint

    def _fail(self, what: str) -> None:
        tail = self.log_tail()
        self.stop()
        raise FlinkRunnerError(f"the Flink job server {what}; last lines of {self.log_path}:\n"
                               f"{tail}")

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the job server's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process this object started (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._artifacts_dir is not None:
            shutil.rmtree(self._artifacts_dir, ignore_errors=True)
            self._artifacts_dir = None

    def __enter__(self) -> FlinkJobServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``fetch``: get the jars; ``args``: print FlinkRunner options; ``info``: versions and
    paths; ``serve``: run a job server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tools.flink_runner",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="fetch the job server jars into .local/flink (once)")
    args_parser = commands.add_parser("args", help="print FlinkRunner pipeline options, one a "
                                                   "line")
    args_parser.add_argument("--parallelism", type=int, default=2)
    commands.add_parser("info", help="print versions and the cached paths")
    serve = commands.add_parser("serve", help="run a job server until interrupted")
    serve.add_argument("--port", type=int, default=8099)
    serve.add_argument("--parallelism", type=int, default=2)
    serve.add_argument("--max-heap", default=DEFAULT_MAX_HEAP)
    serve.add_argument("--log-level", default="info")
    options = parser.parse_args(argv)
    try:
        if options.command == "fetch":
            print(ensure_job_server_jar())
        elif options.command == "args":
            print("\n".join(flink_pipeline_args(options.parallelism)))
        elif options.command == "info":
            launcher = _launcher_path(job_server_dir(), JOB_SERVER_BEAM_VERSION, FLINK_VERSION)
            print(f"python SDK (apache_beam): {python_sdk_version()}")
            print(f"job server: Beam Java {JOB_SERVER_BEAM_VERSION}, "
                  f"beam-runners-flink-{FLINK_VERSION}")
            print(f"launcher jar: {launcher} ({'cached' if launcher.exists() else 'not fetched'})")
        else:
            # SIGTERM too should stop the job server, not orphan it.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            with FlinkJobServer(port=options.port, max_heap=options.max_heap,
                                log_level=options.log_level) as server:
                print(f"Flink job server pid {server.pid} on {server.endpoint}; log "
                      f"{server.log_path}\npipeline options:\n  "
                      + " ".join(server.pipeline_args(options.parallelism)), flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while server.running:
                        time.sleep(1)
                    print(f"the job server exited by itself; see {server.log_path}",
                          file=sys.stderr)
                    return 1
    except FlinkRunnerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
