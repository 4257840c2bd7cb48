"""The Dataflow Flex Template: its parameters match the pipeline's options, and the Docker build
context holds everything the Dockerfile needs. (Google Cloud cannot be reached from here.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipelines import migrate
from pipelines.config import command_line_settings
from tools import flex_template, pins

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "configs" / "dataflow" / "Dockerfile"


def test_metadata_file_is_generated_from_the_code():
    assert flex_template.main(["--check"]) == 0


def test_every_template_parameter_is_an_option_and_every_option_a_parameter():
    parameters = json.loads(flex_template.METADATA.read_text())["parameters"]
    names = [parameter["name"] for parameter in parameters]
    assert len(names) == len(set(names))
    assert set(names) == {"config"} | {option for option, _, _ in command_line_settings()}
    for parameter in parameters:
        assert parameter["label"] and parameter["helpText"]
        assert isinstance(parameter["isOptional"], bool)
        for regex in parameter.get("regexes", []):
            re.compile(regex)
    # The pipeline accepts every parameter the way the launcher passes it (--name=value).
    argv = [f"--{name}=1" for name in names if name != "config"] + ["--config=gs://b/s.yaml"]
    options = migrate.MigrateOptions(argv)
    values = options.get_all_options()
    for name in names:
        assert values[name] is not None, name
    assert not any("password" in name for name in names if not name.endswith("_env")
                   and not name.endswith("_file"))


def test_regexes_accept_the_defaults_and_reject_nonsense():
    document = json.loads(flex_template.METADATA.read_text())
    parameters = {parameter["name"]: parameter for parameter in document["parameters"]}
    assert re.match(parameters["max_workers"]["regexes"][0], "5")
    assert not re.match(parameters["max_workers"]["regexes"][0], "five")
    assert re.match(parameters["write_consistency"]["regexes"][0], "QUORUM")
    assert re.match(parameters["fallback_consistency"]["regexes"][0], "null")
    assert re.match(parameters["config"]["regexes"][0], "gs://bucket/migrator_settings.yaml")


def test_docker_build_context_has_what_the_dockerfile_copies():
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.replace("\\\n", " ").splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    copies = [line.split()[1:-1] for line in instructions
              if line.startswith("COPY") and "--from" not in line]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{source} is not in the build context"
    base = next(line for line in instructions if line.startswith("FROM"))
    # The lock names the Beam version; the image that runs the workers follows it.
    assert base == f"FROM apache/beam_python3.11_sdk:{pins.beam_version()}"
    assert "-c requirements.lock" in text
    py_file = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=\$\{WORKDIR\}/(\S+)", text).group(1)
    assert (ROOT / py_file).is_file() and py_file.startswith(("pipelines/", "transforms/"))
    assert "def run(" in (ROOT / py_file).read_text()
