"""Errors a user causes when connecting (a wrong password, a login missing, a wrong port, TLS
missing or a certificate not trusted) end in exit 2 with one line naming the setting at fault,
no traceback on the console, the driver's traceback in the log file, and never the password
(against real nodes with a login and with client encryption)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from tests.helpers import write_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "not-the-password-4711"


@pytest.fixture(scope="module")
def login_node(local_cluster_factory):
    return local_cluster_factory(43, auth=True)


def migrate(settings: Path, *args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(settings),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **environment})


def test_a_wrong_password_names_the_login_settings(tmp_path, cassandra_hosts, login_node):
    settings = write_settings(tmp_path, cassandra_hosts[0], login_node, "system", ["local"],
                              TARGET={"USERNAME": "cassandra", "PASSWORD_ENV": "TARGET_PW"})

    completed = migrate(settings, TARGET_PW=SECRET)

    assert completed.returncode == 2
    console = completed.stderr
    assert "TARGET.USERNAME / TARGET.PASSWORD_ENV (variable TARGET_PW)" in console
    assert "refused the login of user 'cassandra'" in console
    assert "Traceback" not in console and "TARGET.HOSTS" not in console
    assert len([line for line in console.splitlines() if "ERROR" in line]) == 1
    log = (tmp_path / "migrator.log").read_text()
    assert "Traceback" in log and "AuthenticationFailed" in log  # the driver's, for a reader
    assert SECRET not in console + completed.stdout + log


def test_a_login_the_cluster_requires_names_the_username(tmp_path, cassandra_hosts,
                                                        login_node):
    settings = write_settings(tmp_path, cassandra_hosts[0], login_node, "system", ["local"])

    completed = migrate(settings)

    assert completed.returncode == 2
    assert "TARGET.USERNAME: 127.0.0.43:9042 requires a login" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_closed_port_names_the_hosts_and_the_port(tmp_path, cassandra_hosts):
    settings = write_settings(tmp_path, cassandra_hosts[0], cassandra_hosts[1], "system",
                              ["local"], SOURCE={"PORT": 9999})

    completed = migrate(settings)

    assert completed.returncode == 2
    assert (f"SOURCE.HOSTS: cannot connect to {cassandra_hosts[0]}:9999 (check SOURCE.HOSTS "
            "and SOURCE.PORT)") in completed.stderr
    assert "Connection refused" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.fixture(scope="module")
def tls_node(local_cluster_factory):
    from tools.local_cassandra import launcher

    host = local_cluster_factory(44, tls=True)
    return host, launcher.node_dir(host) / "tls" / "node.pem"


def test_a_node_that_requires_tls_names_the_ssl_setting(tmp_path, cassandra_hosts, tls_node):
    host, _ = tls_node
    settings = write_settings(tmp_path, cassandra_hosts[0], host, "system", ["local"])

    completed = migrate(settings)

    assert completed.returncode == 2
    assert "TARGET.HOSTS: cannot connect to 127.0.0.44:9042" in completed.stderr
    assert "if it requires client encryption, set TARGET.SSL.ENABLED: true" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_certificate_not_trusted_names_the_ssl_settings(tmp_path, cassandra_hosts, tls_node):
    host, _ = tls_node
    public_authorities = certifi.where()  # trusts much, but not the node's own certificate
    settings = write_settings(tmp_path, cassandra_hosts[0], host, "system", ["local"],
                              TARGET={"SSL": {"ENABLED": True, "CA_CERTS": public_authorities}})

    completed = migrate(settings)

    assert completed.returncode == 2
    assert "TARGET.SSL: the TLS handshake with 127.0.0.44:9042 failed" in completed.stderr
    assert "Traceback" not in completed.stderr

