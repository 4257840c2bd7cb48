"""The bench's peers: ``cqlsh COPY`` and DataStax Bulk Loader (dsbulk), run as a new user runs them.

Each peer copies the source table in two steps, an export to CSV and an import of that CSV into
the target, at the tool's default settings:

  * ``cqlsh_copy``: ``cqlsh <source> -e "COPY ks.t TO 'file.csv'"``, then
    ``cqlsh <target> -e "COPY ks.t FROM 'file.csv'"`` (the ``cqlsh`` package from PyPI; an empty
    cqlshrc, so that no ``~/.cassandra/cqlshrc`` changes the defaults). Both COPYs work in
    child processes (one fewer than the cores, at least one, at most 16; COPY FROM adds a
    feeder process), whose CPU time counts with the rest of the tree's;
  * ``dsbulk``: ``dsbulk unload -k ks -t t -h <source> -url <folder>``, then ``dsbulk load`` of
    that folder into the target, on Java 17 (``$JAVA_HOME/bin/java``, else ``java`` on PATH)
    with the JVM's default heap.

    python -m bench.peers cqlsh_copy|dsbulk --source-host 127.0.0.1 --target-host 127.0.0.2 \
        --keyspace ks --table events --workdir DIR --result result.json
    python -m bench.peers fetch      # dsbulk's jars, once (bench.run does it when they are missing)

``bench.run`` measures this program as one contender: ``seconds`` in the result file is the wall
time of both steps, start-ups included (cqlsh's interpreter, dsbulk's JVM: a user waits for them
too), with ``export_seconds`` and ``import_seconds`` apart. The CPU and memory that ``bench.run``
reports are those of the process tree: the tool's processes and this small wrapper, which
imports nothing beyond the standard library.

dsbulk 1.10.0 is the newest release Maven Central serves. ``bench/dsbulk/pom.xml`` resolves it
(runner, load and unload workflows, CSV connector, the two reactor modules it finds through
ServiceLoader, logback) with ``mvn dependency:copy-dependencies`` into ``.local/dsbulk/``
(git-ignored); ``ensure_dsbulk()`` does it on first use. Its Java driver (4.14) cannot parse the
``vector`` type: when any table of any keyspace of a cluster has a vector column, it reads no
schema at all ("Could not parse type name vector<...>") and fails with "Keyspace ks does not
exist", whichever keyspace it was given. The bench's tables have no vector column; the clusters
it runs against must have none anywhere.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.pins import MAVEN

REPOSITORY = Path(__file__).resolve().parent.parent
PEERS = ("cqlsh_copy", "dsbulk")
DSBULK_VERSION = MAVEN["dsbulk"]
DSBULK_POM = Path(__file__).resolve().parent / "dsbulk" / "pom.xml"
DSBULK_MAIN_CLASS = "com.datastax.oss.dsbulk.runner.DataStaxBulkLoader"
# What dsbulk prints when its driver meets a vector column anywhere in the cluster.
VECTOR_PARSE_ERROR = "Could not parse type name vector"
VECTOR_EXPLANATION = (
    f"dsbulk {DSBULK_VERSION}'s Java driver cannot parse vector columns: a vector column in any "
    "keyspace of the cluster makes it read no schema and report the bench's keyspace as "
    "missing. Run the bench against clusters with no vector column anywhere")


class PeerError(RuntimeError):
    """A peer tool cannot run here (no mvn, no java, no cqlsh); the message says what to do."""


# --------------------------------------------------------------------------- dsbulk's jars

def dsbulk_lib(version: str = DSBULK_VERSION) -> Path:
    """The folder of dsbulk's jars; it exists only once every jar is in it."""
    return REPOSITORY / ".local" / "dsbulk" / f"dsbulk-{version}" / "lib"


def ensure_dsbulk(version: str = DSBULK_VERSION) -> Path:
    """dsbulk's jar folder, fetched from Maven Central with ``mvn`` on the first call.

    The jars go into a staging folder renamed into place when Maven succeeds, so the folder's
    presence means a complete set; a lock keeps two fetches from racing.
    """
    lib = dsbulk_lib(version)
    if lib.is_dir():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.is_dir():
            _fetch_dsbulk(lib, version)
    return lib


def _fetch_dsbulk(lib: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PeerError("mvn (Apache Maven) is not on PATH: it is needed once to fetch dsbulk "
                        f"{version}'s jars from Maven Central (or --skip dsbulk)")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(DSBULK_POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
               f"-Ddsbulk.version={version}", f"-Dlogback.version={MAVEN['logback']}"]
    print(f"fetching dsbulk {version}'s jars with Maven into {lib}", file=sys.stderr, flush=True)
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0 or not (staging / f"dsbulk-runner-{version}.jar").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise PeerError(f"Maven could not fetch com.datastax.oss:dsbulk-runner:{version} and "
                        "its dependencies:\n" + (completed.stdout + completed.stderr)[-3000:])
    staging.rename(lib)


def java() -> str:
    """The java that runs dsbulk: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    command = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not command or not Path(command).exists():
        raise PeerError("java is not on PATH: dsbulk needs Java 17 (or set JAVA_HOME)")
    return command


def cqlsh() -> str:
    """The ``cqlsh`` installed beside this Python (the bench extra), else the one on PATH."""
    beside = Path(sys.executable).parent / "cqlsh"
    command = str(beside) if beside.exists() else shutil.which("cqlsh")
    if command is None:
        raise PeerError("cqlsh is not installed: pip install -e '.[bench]' (or --skip cqlsh_copy)")
    return command


# --------------------------------------------------------------------------- the two steps

def _cql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def cqlsh_steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """COPY TO a CSV file in the work folder, then COPY FROM it."""
    cqlshrc = args.workdir / "cqlshrc"
    cqlshrc.write_text("", encoding="utf-8")
    table = f'"{args.keyspace}"."{args.table}"'
    csv = _cql_string(str(args.workdir / f"{args.table}.csv"))
    command = [cqlsh(), "--cqlshrc", str(cqlshrc)]
    return [("export", [*command, args.source_host, "-e", f"COPY {table} TO {csv}"]),
            ("import", [*command, args.target_host, "-e", f"COPY {table} FROM {csv}"])]


def dsbulk_steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """dsbulk unload into a CSV folder in the work folder, then dsbulk load of it."""
    lib = dsbulk_lib()
    if not lib.is_dir():
        raise PeerError(f"dsbulk's jars are not in {lib}: run python -m bench.peers fetch")
    command = [java(), "-cp", f"{lib}/*", DSBULK_MAIN_CLASS]
    table = ["-k", args.keyspace, "-t", args.table, "-url", str(args.workdir / "csv"),
             "-logDir", str(args.workdir / "dsbulk-logs")]
    return [("export", [*command, "unload", "-h", args.source_host, *table]),
            ("import", [*command, "load", "-h", args.target_host, *table])]


def _failure(peer: str, step: str, returncode: int, output: str) -> str:
    """Why a step failed, in one line, with the vector explanation when that was the cause."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "error" in line.lower()
                 or "failed" in line.lower()), lines[-1] if lines else "no output")
    message = f"{peer} {step} exited with {returncode}: {last}"
    if peer == "dsbulk" and VECTOR_PARSE_ERROR in output:
        message += f" ({VECTOR_EXPLANATION})"
    return message


def copy(args: argparse.Namespace) -> dict:
    """Run the export, then (if it succeeded) the import; their timings and any failure."""
    steps = cqlsh_steps(args) if args.peer == "cqlsh_copy" else dsbulk_steps(args)
    facts: dict = {"tool": version(args.peer)}
    total = 0.0
    for step, command in steps:
        log = args.workdir / f"{step}.log"
        with open(log, "wb") as output:
            started = time.perf_counter()
            returncode = subprocess.run(command, cwd=args.workdir, stdout=output,
                                        stderr=subprocess.STDOUT).returncode
            seconds = time.perf_counter() - started
        total += seconds
        facts[f"{step}_seconds"] = round(seconds, 3)
        if returncode != 0:
            output = log.read_text(encoding="utf-8", errors="replace")
            facts["error"] = _failure(args.peer, step, returncode, output)
            sys.stderr.write("\n".join(output.splitlines()[-15:]) + "\n")
            break
    facts["seconds"] = round(total, 3)
    return facts


def version(peer: str) -> str:
    if peer == "dsbulk":
        return f"dsbulk {DSBULK_VERSION}"
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return f"cqlsh {installed('cqlsh')}"
    except PackageNotFoundError:
        return "cqlsh"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", choices=(*PEERS, "fetch"))
    parser.add_argument("--source-host", default="127.0.0.1")
    parser.add_argument("--target-host", default="127.0.0.2")
    parser.add_argument("--keyspace")
    parser.add_argument("--table", default="events")
    parser.add_argument("--workdir", type=Path, help="where the CSV and the tools' logs go")
    parser.add_argument("--result", type=Path, help="JSON file of the figures, for bench.run")
    args = parser.parse_args(argv)
    try:
        if args.peer == "fetch":
            print(ensure_dsbulk())
            return 0
        if not (args.keyspace and args.workdir and args.result):
            parser.error(f"{args.peer} needs --keyspace, --workdir and --result")
        args.workdir.mkdir(parents=True, exist_ok=True)
        facts = copy(args)
    except PeerError as error:
        print(error, file=sys.stderr)
        if args.result:
            args.result.write_text(json.dumps({"error": str(error)}), encoding="utf-8")
        return 2
    args.result.write_text(json.dumps(facts), encoding="utf-8")
    return 1 if facts.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
