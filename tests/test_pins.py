"""The tested install is the installed one: the venv holds exactly requirements.lock, setup.py's
ranges admit the lock, the files that name a version follow the lock, and the Maven artifacts
are pinned in one list (tools/pins.py) that the poms do not repeat."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bench import peers
from tools import flink_runner, pins
from tools.local_cassandra import launcher

ROOT = Path(__file__).resolve().parents[1]
POMS = [ROOT / "tools" / "local_cassandra" / "pom.xml", ROOT / "tools" / "flink" / "pom.xml",
        ROOT / "bench" / "dsbulk" / "pom.xml"]


def test_the_environment_holds_exactly_the_locks_versions():
    # What `make install` made (and CI runs the tests in): every installed distribution is in
    # the lock at the lock's version (pip freeze's view, pip and setuptools included).
    assert pins.installed_differences() == []
    installed = {pins.canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    for name in ("apache-beam", "cassandra-driver", "pytest", "pip", "setuptools", "uv"):
        assert installed[name] == pins.locked()[name], name


def test_a_difference_from_the_lock_is_named():
    class Distribution:
        def __init__(self, name, version):
            self.metadata, self.version = {"Name": name}, version

    locked = pins.locked()
    differences = pins.installed_differences([
        Distribution("apache_beam", "2.0.0"), Distribution("not-locked", "1.0"),
        Distribution("cassandra-driver", locked["cassandra-driver"]),
        Distribution(pins.PROJECT, "0.1.0")])
    assert differences == [f"apache-beam 2.0.0 is installed, the lock has {locked['apache-beam']}",
                           "not-locked 1.0 is installed but not in the lock"]


def test_setup_py_ranges_admit_the_lock():
    locked = pins.locked()
    requirements = [Requirement(text) for text in metadata.requires(pins.PROJECT)]
    extras = {"test", "bench", "gcp"}
    checked = set()
    for requirement in requirements:
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in extras):
            continue
        name = pins.canonical(requirement.name)
        assert name in locked, f"{name} is required by setup.py but not locked"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"the lock's {name} {locked[name]} is outside setup.py's {requirement.specifier}")
        checked.add(name)
    assert {"apache-beam", "cassandra-driver", "pyyaml", "pytest", "cqlsh"} <= checked


def test_the_lock_names_one_beam_version_and_the_files_follow_it():
    text = pins.LOCK.read_text()
    assert len(re.findall(r"^apache-beam==", text, re.MULTILINE)) == 1
    assert pins.stale_files() == []
    beam = pins.beam_version()
    assert f"FROM apache/beam_python3.11_sdk:{beam}" in pins.DOCKERFILE.read_text()
    assert f"apache-beam=={beam}" in pins.README.read_text()
    # The job server reports the SDK it drives from the lock when Beam is not importable.
    assert flink_runner.python_sdk_version() == beam


def test_sync_writes_the_locks_version_into_a_stale_dockerfile(tmp_path, monkeypatch):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(pins.DOCKERFILE.read_text().replace(
        f"sdk:{pins.beam_version()}", "sdk:2.1.0"))
    readme = tmp_path / "README.md"
    readme.write_text(pins.README.read_text().replace(
        f"apache-beam=={pins.beam_version()}", "apache-beam==2.1.0"))
    monkeypatch.setattr(pins, "DOCKERFILE", dockerfile)
    monkeypatch.setattr(pins, "README", readme)
    monkeypatch.setattr(pins, "ROOT", tmp_path)
    assert pins.stale_files() == [dockerfile, readme]
    assert pins.main(["check"]) == 1
    assert pins.main(["sync"]) == 0
    assert pins.stale_files() == []
    assert f"sdk:{pins.beam_version()}" in dockerfile.read_text()


@pytest.mark.parametrize("pom", POMS, ids=lambda path: path.parent.name)
def test_poms_name_no_version_of_their_own(pom):
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    tree = ElementTree.parse(pom)
    assert tree.find("m:properties", namespace) is None
    versions = [element.text for element in tree.findall(".//m:dependency/m:version", namespace)]
    assert versions and all(re.fullmatch(r"\$\{[a-z0-9.]+\}", text) for text in versions), versions


def test_the_tools_take_their_versions_from_the_one_list():
    assert launcher.TESTED_RELEASES == pins.MAVEN["cassandra"]
    assert launcher.CASSANDRA_VERSION == pins.MAVEN["cassandra"]["5.0"]
    assert launcher.resolve_version("4.0") == pins.MAVEN["cassandra"]["4.0"]
    assert flink_runner.JOB_SERVER_BEAM_VERSION == pins.MAVEN["beam_flink_runner"]
    assert flink_runner.FLINK_VERSION == pins.MAVEN["flink"]
    assert peers.DSBULK_VERSION == pins.MAVEN["dsbulk"]
    # Every version the code hands Maven is one of the list's.
    sources = "".join(path.read_text() for path in (
        ROOT / "tools" / "local_cassandra" / "launcher.py", ROOT / "tools" / "flink_runner.py",
        ROOT / "bench" / "peers.py"))
    for prop in ("cassandra.version", "beam.version", "flink.minor", "slf4j.version",
                 "dsbulk.version", "logback.version"):
        assert f"-D{prop}=" in sources, prop
