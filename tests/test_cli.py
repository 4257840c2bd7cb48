"""The command line: subcommands, their help, the version, and the bare command of old scripts
(no cluster needed: nothing here connects)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.options import MigrateOptions
from tests.helpers import write_settings

ROOT = Path(__file__).resolve().parent.parent


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def run_options() -> list[str]:
    parser = argparse.ArgumentParser()
    MigrateOptions._add_argparse_args(parser)
    return [name for action in parser._actions for name in action.option_strings
            if name not in ("-h", "--help")]


def test_version_prints_the_package_version():
    expected = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    completed = command("--version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"cassandra-migrate {expected}"
    legacy = subprocess.run([sys.executable, "-m", "pipelines.migrate", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert legacy.stdout.strip() == f"cassandra-migrate {expected}"


def test_top_level_help_names_every_subcommand():
    completed = command("--help")
    assert completed.returncode == 0
    for name in ("migrate", "plan", "validate", "replay", "--version"):
        assert name in completed.stdout
    assert "Settings" in completed.stdout and "README.md" in completed.stdout


@pytest.mark.parametrize("subcommand", ["migrate", "plan"])
def test_help_of_a_run_names_every_option_with_its_default(subcommand):
    completed = command(subcommand, "--help")
    assert completed.returncode == 0
    text = completed.stdout
    validation = {f"--{key.lower()}" for key in cli.VALIDATE_SETTINGS}
    options = [option for option in run_options() if option not in validation]
    assert len(options) > 50  # --config, --set, --resume and one per setting
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), option
    # Only what the subcommand uses, grouped, with examples.
    assert not any(option in text for option in validation)
    for name, _ in cli.HELP_GROUPS:
        assert (f"{name} settings:" in text) == (name != "validation"), name
    assert f"examples:\n  cassandra-migrate {subcommand} --config settings.yaml" in text
    flat = " ".join(text.split())
    assert re.search(r"--max_workers MAX_WORKERS Overrides MAX_WORKERS [^)]*default: 5\)", flat)
    assert "default: migrator_ledger)" in flat
    assert "README.md" in text and "Beam pipeline option" in text


def test_help_of_validate_names_its_options_and_settings():
    completed = command("validate", "--help")
    assert completed.returncode == 0
    for name in ("--config", "--set", "--resume", *cli.VALIDATE_SETTINGS, "README.md",
                 *(f"--{key.lower()}" for key in cli.VALIDATE_SETTINGS),
                 "validation settings:", "examples:"):
        assert name in completed.stdout, name


def test_help_of_replay_names_its_options():
    completed = command("replay", "--help")
    assert completed.returncode == 0
    for name in ("--config", "--set", "path", "README.md"):
        assert name in completed.stdout, name


def test_the_bare_command_is_a_migration(tmp_path):
    missing = tmp_path / "absent.yaml"
    completed = command("--config", str(missing))
    assert completed.returncode == 2
    assert completed.stderr.strip().endswith(f"error: {missing}: settings file not found")
    assert "Traceback" not in completed.stderr


def test_validate_goes_to_the_validator_without_its_word(monkeypatch):
    received = []
    fake = types.ModuleType("pipelines.validate")
    fake.run = lambda argv: received.append(argv) or 7
    monkeypatch.setitem(sys.modules, "pipelines.validate", fake)
    argv = ["--config", "s.yaml", "--set", "SAMPLE_PERCENT=5", "--resume", "--runner=direct"]
    assert cli.run(["validate", *argv]) == 7
    assert received == [argv]


def test_a_missing_subcommand_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pipelines.validate", None)  # as if not installed
    assert cli.run(["validate", "--config", "s.yaml"]) == 2
    assert "validate is not part of this installation" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["plna"], "'plna' is not a command of cassandra-migrate; did you mean 'plan'?"),
    (["valdiate"], "'valdiate' is not a command of cassandra-migrate; did you mean 'validate'?"),
    (["help"], "'help' is not a command of cassandra-migrate; for help: cassandra-migrate "
               "--help"),
    (["-V"], "-V is not an option of this command or of Beam"),
    (["--max_workrs", "8"], "--max_workrs is not an option of this command or of Beam; did you "
                            "mean --max_workers"),
    (["migrate", "--max-workers", "8"], "--max-workers is not an option of this command or of "
                                        "Beam; did you mean --max_workers?"),
    (["--target_password", "hunter2"], "--target_password is not an option"),
    (["validate", "--target_password=hunter2"], "--target_password is not an option"),
    (["plan", "--auto_correct", "true", "--target_password", "hunter2"],
     "--target_password is not"),
    (["plan", "--auto_correct"], "the command line: argument --auto_correct: expected one "
                                 "argument"),
])
def test_what_the_command_line_does_not_understand_stops_it_before_anything_is_written(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, argv, message):
    source_session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    target_session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    source_session.execute(f"INSERT INTO {keyspace}.t (k, v) VALUES (1, 'one')")
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"])
    if argv[0] in ("plna", "valdiate", "help"):
        argv = [argv[0], "--config", str(settings)]
    elif argv[0] in cli.SUBCOMMANDS:
        argv = [argv[0], "--config", str(settings), *argv[1:]]
    else:
        argv = ["--config", str(settings), *argv]

    completed = command(*argv)

    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert "hunter2" not in completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "migrator.log").exists()  # stopped before it started
    assert list(target_session.execute(f"SELECT k FROM {keyspace}.t")) == []


@pytest.mark.parametrize("key", ["LOG_FILE", "SUMMARY_FILE", "FAILED_ROWS_DIR",
                                 "VALIDATION_SUMMARY_FILE", "DIFFERENCES_DIR"])
def test_an_output_that_cannot_be_written_stops_the_run_before_it_starts(
        tmp_path, keyspace, cassandra_hosts, source_session, target_session, key):
    source_session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    target_session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    source_session.execute(f"INSERT INTO {keyspace}.t (k, v) VALUES (1, 'one')")
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    # A folder inside a file cannot be made, even by root; a folder is not a file.
    bad = str(blocker / "out") if key != "SUMMARY_FILE" else str(tmp_path)
    settings = write_settings(tmp_path, *cassandra_hosts[:2], keyspace, ["t"], **{key: bad})
    subcommand = "validate" if key in ("VALIDATION_SUMMARY_FILE", "DIFFERENCES_DIR") else "migrate"

    completed = command(subcommand, "--config", str(settings))

    assert completed.returncode == 2, completed.stderr
    assert f"{key}: {bad}: " in completed.stderr
    assert "Traceback" not in completed.stderr
    assert list(target_session.execute(f"SELECT k FROM {keyspace}.t")) == []


def test_options_after_a_double_dash_reach_beam_unchecked(tmp_path):
    """A runner's own options (Flink's checkpointing, a Dataflow Java option) are unknown to
    Beam's Python SDK: after "--" they pass, for Beam to hand on."""
    from pipelines.migrate import load_run

    settings = write_settings(tmp_path, "127.0.0.1", "127.0.0.2", "ks", ["t"])
    with pytest.raises(Exception, match="--checkpointingInterval is not an option"):
        load_run(["--config", str(settings), "--checkpointingInterval=60000"])
    options, _, _ = load_run(["--config", str(settings), "--runner=direct", "--",
                              "--checkpointingInterval=60000"])
    passed = options.get_all_options(retain_unknown_options=True)
    assert passed["checkpointingInterval"] == "60000" and passed["runner"] == "direct"
