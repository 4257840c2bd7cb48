"""The launcher's own login (``TARGET.LAUNCHER``): the workers' password may then live on the
workers only. Settings checks only; the run itself is in tests/test_flink_cluster.py."""

from __future__ import annotations

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.config import SettingsError, load_settings
from pipelines.migrate import check_secrets_for_runner

WORKER_VARIABLE = "LAUNCHER_LOGIN_TEST_WORKER_PASSWORD"


def _settings(tmp_path, target: dict):
    document = {"SOURCE": {"HOSTS": ["127.0.0.1"], "KEYSPACE": "ks"},
                "TARGET": {"HOSTS": ["127.0.0.2"], "KEYSPACE": "ks", **target},
                "TABLES": ["t"]}
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_settings(str(path), [])


def test_without_a_launcher_login_the_launcher_needs_the_workers_variable(tmp_path,
                                                                           monkeypatch):
    monkeypatch.delenv(WORKER_VARIABLE, raising=False)
    with pytest.raises(SettingsError, match=f"TARGET.PASSWORD_ENV: environment variable "
                                            f"{WORKER_VARIABLE} is not set"):
        _settings(tmp_path, {"USERNAME": "migrator", "PASSWORD_ENV": WORKER_VARIABLE})


def test_with_a_launcher_login_the_workers_variable_may_be_missing_here(tmp_path, monkeypatch):
    monkeypatch.delenv(WORKER_VARIABLE, raising=False)
    secret = tmp_path / "launcher.secret"
    secret.write_text("launcher-secret\n")
    settings = _settings(tmp_path, {
        "USERNAME": "migrator", "PASSWORD_ENV": WORKER_VARIABLE,
        "LAUNCHER": {"USERNAME": "migrator_launcher", "PASSWORD_FILE": str(secret)}})

    launcher = settings.target.launcher_connection
    assert (launcher.username, launcher.resolve_password()) == ("migrator_launcher",
                                                                "launcher-secret")
    assert settings.target.connection.username == "migrator"  # what the workers use
    assert settings.target.connection.password_env == WORKER_VARIABLE
    assert settings.source.launcher_connection == settings.source.connection
    assert "launcher-secret" not in repr(settings)
    # Workers in other processes: fine. Workers in this process: the variable must be here.
    check_secrets_for_runner(settings, PipelineOptions(
        ["--runner=PortableRunner", "--environment_type=EXTERNAL"]))
    for local in (["--runner=DirectRunner"],
                  ["--runner=PortableRunner", "--environment_type=LOOPBACK"]):
        with pytest.raises(SettingsError, match=f"{WORKER_VARIABLE} is not set"):
            check_secrets_for_runner(settings, PipelineOptions(local))


@pytest.mark.parametrize("launcher, message", [
    ({"PASSWORD_FILE": "x"}, "TARGET.LAUNCHER.USERNAME: is required"),
    ({"USERNAME": "l"}, "TARGET.LAUNCHER: give one of PASSWORD_ENV, PASSWORD_FILE"),
    ({"USERNAME": "l", "PASSWORD": "p"}, "TARGET.LAUNCHER.PASSWORD"),
    ({"USERNAME": "l", "PASSWORD_ENV": "LAUNCHER_LOGIN_TEST_UNSET"},
     "TARGET.LAUNCHER.PASSWORD_ENV: environment variable LAUNCHER_LOGIN_TEST_UNSET is not set"),
    ("migrator_launcher", "TARGET.LAUNCHER: must be a mapping"),
])
def test_a_wrong_launcher_login_is_named(tmp_path, monkeypatch, launcher, message):
    monkeypatch.delenv("LAUNCHER_LOGIN_TEST_UNSET", raising=False)
    with pytest.raises(SettingsError, match=message):
        _settings(tmp_path, {"USERNAME": "migrator", "PASSWORD_ENV": "HOME",
                             "LAUNCHER": launcher})
