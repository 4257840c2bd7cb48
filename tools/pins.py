"""The versions the project is tested with, in two lists: the Python lock and the Maven pins.

* ``requirements.lock`` (made by ``make lock`` with uv from setup.py's ranges and
  ``requirements.in``) holds every Python distribution of the test, bench and gcp extras at one
  version. ``make install``, ``make test``, ``make demo``, CI and the Dataflow image install from
  it (as pip constraints), so a new release upstream changes nothing until ``make upgrade``.
  It is the one place that names the Beam version: the Dockerfile's base image and the README
  follow from it (``python -m tools.pins sync`` writes them, ``check`` compares them).
* ``MAVEN`` below: every artifact fetched from Maven Central (the test nodes' Cassandra
  releases, the Flink job server, the bench's dsbulk). The poms name no version of their own:
  each is passed from here with ``-D``.

Only the standard library: the Cassandra launcher imports this before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "configs" / "dataflow" / "Dockerfile"
README = ROOT / "README.md"
PROJECT = "cassandra-beam-migrator"

#: The Maven artifacts, each at the one version the tests and the bench fetch.
MAVEN = {
    # org.apache.cassandra:cassandra-all, the tested release of each supported series; the
    # newest series is the default of the local nodes.
    "cassandra": {"4.0": "4.0.17", "4.1": "4.1.10", "5.0": "5.0.8"},
    # org.apache.beam:beam-runners-flink-<flink>: the newest Beam Java whose Flink runner
    # resolves with all of its dependencies on the Maven Central these machines reach (no
    # *-job-server jar and no release matching the Python SDK is served there).
    "beam_flink_runner": "2.62.0",
    "flink": "1.19",
    # org.slf4j:slf4j-simple, the job server's logging binding (it logs through SLF4J 1.7).
    "slf4j_simple": "1.7.30",
    # com.datastax.oss:dsbulk-*, the bench's peer, and its logging binding.
    "dsbulk": "1.10.0",
    "logback": "1.2.13",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")
_BASE_IMAGE = re.compile(r"^(FROM apache/beam_python3\.11_sdk:)(\S+)$", re.MULTILINE)
_README_PINS = re.compile(r"(apache-beam==|cassandra-driver==)([0-9][^\s`),]*)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of every distribution in the lock."""
    versions = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            versions[canonical(match.group(1))] = match.group(2)
    if not versions:
        raise ValueError(f"{path} pins no distribution")
    return versions


def beam_version() -> str:
    return locked()["apache-beam"]


def _synced(text: str, pattern: re.Pattern, versions: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        key = match.group(1).rstrip("=:")
        name = "apache-beam" if "beam" in key else canonical(key)
        return match.group(1) + versions[name]
    return pattern.sub(replace, text)


def expected_files() -> dict[Path, str]:
    """The files whose versions follow the lock, as they should read."""
    versions = locked()
    return {
        DOCKERFILE: _synced(DOCKERFILE.read_text(), _BASE_IMAGE, versions),
        README: _synced(README.read_text(), _README_PINS, versions),
    }


def stale_files() -> list[Path]:
    return [path for path, text in expected_files().items() if path.read_text() != text]


def installed_differences(distributions=None) -> list[str]:
    """What the running environment has that the lock does not say: a distribution missing
    from the lock, or at another version. The project itself is not in the lock."""
    if distributions is None:
        from importlib import metadata
        distributions = metadata.distributions()
    versions = locked()
    differences = []
    for distribution in distributions:
        name = canonical(distribution.metadata["Name"])
        if name == PROJECT:
            continue
        if name not in versions:
            differences.append(f"{name} {distribution.version} is installed but not in the lock")
        elif versions[name] != distribution.version:
            differences.append(f"{name} {distribution.version} is installed, the lock has "
                               f"{versions[name]}")
    return sorted(differences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pins", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("command", choices=["check", "sync", "installed", "beam"],
                        help="check: the files that follow the lock agree with it; sync: write "
                             "them from the lock; installed: this environment holds exactly "
                             "the lock's versions; beam: print the lock's Beam version")
    command = parser.parse_args(argv).command
    if command == "beam":
        print(beam_version())
        return 0
    if command == "installed":
        differences = installed_differences()
        for line in differences:
            print(line, file=sys.stderr)
        return 1 if differences else 0
    if command == "sync":
        for path, text in expected_files().items():
            if path.read_text() != text:
                path.write_text(text)
                print(f"{path.relative_to(ROOT)}: versions from {LOCK.name}")
        return 0
    stale = stale_files()
    for path in stale:
        print(f"{path.relative_to(ROOT)} does not follow {LOCK.name}: run "
              "`python -m tools.pins sync`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
