"""Shared fixtures: a real Cassandra on loopback and one fresh keyspace per test.

``CASSANDRA_HOSTS`` (comma-separated) names already-running independent clusters, one contact
point each: the first is the source cluster, the second the target cluster. When it is unset
the session starts two local single-node clusters (127.0.0.1 and 127.0.0.2) with
``tools.local_cassandra`` and stops them at the end, but only the ones it started itself.
"""

from __future__ import annotations

import os
import uuid

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import RoundRobinPolicy

from tools import flink_runner, local_cassandra

# Beam 2.77's SDK harness threads sometimes die with "CANCELLED: Multiplexer hanging up" when the
# 2.62 job server (the newest this machine's Maven Central serves) closes the data stream after
# a job has finished; results are complete. Only those two harness threads are ignored.
HARNESS_SHUTDOWN_RACE = ("ignore:Exception in thread (read_grpc_client_inputs|run_worker_)"
                         ":pytest.PytestUnhandledThreadExceptionWarning")


def _start_local(count: int, first: int = 1, auth: bool = False, tls: bool = False,
                 durable: bool = False, **settings) -> tuple[list[str], list[str]]:
    """Start (or reuse) local clusters; return (addresses, addresses this call started).

    ``settings`` are extra cassandra.yaml settings."""
    nodes = local_cassandra.plan_nodes(count, "clusters", auth=auth, tls=tls, heap="1G",
                                       num_tokens=1, extra=settings, first=first,
                                       durable=durable)
    report = local_cassandra.start(nodes)
    addresses = [node["address"] for node in report]
    started = [node["address"] for node in report if node["state"] != "reused"]
    if auth:
        for address in addresses:
            _wait_for_login(address, tls=tls, ca_cert=next(
                (node.get("ca_cert") for node in report if node["address"] == address), None))
    return addresses, started


def _wait_for_login(address: str, tls: bool, ca_cert: str | None, timeout: float = 120.0):
    """Until the default superuser can log in: a node takes CQL connections before its role
    manager has created that role, and refuses it ("Bad credentials") meanwhile."""
    import ssl
    import time

    from cassandra.auth import PlainTextAuthProvider

    from tools.local_cassandra.launcher import DEFAULT_SUPERUSER

    context = None
    if tls:
        context = ssl.create_default_context(cafile=ca_cert)
        context.check_hostname = False
    deadline = time.monotonic() + timeout
    while True:
        cluster = Cluster([address], auth_provider=PlainTextAuthProvider(
            *DEFAULT_SUPERUSER), ssl_context=context, protocol_version=5)
        try:
            cluster.connect().execute("SELECT release_version FROM system.local")
            return
        except Exception as error:  # noqa: BLE001 - tried again until the deadline
            if time.monotonic() > deadline:
                pytest.fail(f"the default superuser cannot log in to {address}: {error}")
            time.sleep(1)
        finally:
            cluster.shutdown()


@pytest.fixture(scope="session")
def cassandra_hosts():
    """Contact points of two independent clusters: [source, target]."""
    configured = os.environ.get("CASSANDRA_HOSTS")
    if configured:
        hosts = [host.strip() for host in configured.split(",") if host.strip()]
        if len(hosts) < 2:
            pytest.fail("CASSANDRA_HOSTS must name two independent clusters, e.g. "
                        "127.0.0.1,127.0.0.2")
        yield hosts
        return
    hosts, started = _start_local(2)
    yield hosts
    if started:
        local_cassandra.stop(started)


@pytest.fixture(scope="session")
def local_cluster_factory():
    """Start extra local single-node clusters with their own cassandra.yaml settings.

    Used for behaviour that needs a differently configured server (a guardrail on the target,
    say). Each caller names its own node, 127.0.0.<index> with index 3 or more, so a node left
    up by an interrupted run is reused by the same test only; they stop at the session's end.
    """
    started: list[str] = []

    def start_many(count: int, index: int, auth: bool = False, tls: bool = False,
                   durable: bool = False, **settings) -> list[str]:
        """``count`` clusters from 127.0.0.<index> on, started at the same time."""
        assert index >= 3, "127.0.0.1 and 127.0.0.2 are the source and target clusters"
        addresses, new = _start_local(count, first=index, auth=auth, tls=tls, durable=durable,
                                      **settings)
        started.extend(new)
        return addresses

    def start(index: int, **options) -> str:
        return start_many(1, index, **options)[0]

    start.many = start_many
    yield start
    if started:
        local_cassandra.stop(started)


def connect(host: str) -> Cluster:
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=60)
    return Cluster([host], execution_profiles={EXEC_PROFILE_DEFAULT: profile}, protocol_version=5)


@pytest.fixture(scope="session")
def source_session(cassandra_hosts):
    cluster = connect(cassandra_hosts[0])
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="session")
def target_session(cassandra_hosts):
    cluster = connect(cassandra_hosts[1])
    session = cluster.connect()
    yield session
    cluster.shutdown()


def create_keyspace(session, name: str, replication_factor: int = 1) -> None:
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}")


@pytest.fixture
def keyspace(request, source_session, target_session):
    """A keyspace name unique to this test, created on the source and the target, then dropped.

    The same name exists on both clusters, so a test copies ``ks.t`` on the source to ``ks.t``
    on the target.
    """
    name = f"t_{request.node.name[:20].lower().strip('_')}_{uuid.uuid4().hex[:8]}"
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    for session in (source_session, target_session):
        create_keyspace(session, name)
    yield name
    for session in (source_session, target_session):
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture
def rf3_keyspace(keyspace):
    """``rf3_keyspace(session)``: a keyspace with replication factor 3 on that one-node
    cluster (QUORUM needs 2 replicas: every QUORUM request is Unavailable), dropped after the
    test."""
    made = []

    def make(session) -> str:
        name = f"{keyspace}_rf3"
        create_keyspace(session, name, replication_factor=3)
        made.append((session, name))
        return name

    yield make
    for session, name in made:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture(scope="session")
def flink_job_server():
    """One Beam Flink job server (embedded Flink) for the session, stopped at the end."""
    server = flink_runner.FlinkJobServer()
    try:
        server.start()
    except flink_runner.FlinkRunnerError as error:
        pytest.fail(f"cannot start the Flink job server: {error}")
    yield server
    server.stop()
