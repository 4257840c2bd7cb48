"""How a worker reaches a Cassandra cluster: connection settings and one shared Cluster per process.

``CassandraConnection`` is a small, picklable description that travels inside DoFns. The
driver's ``Cluster`` and ``Session`` are made from it on the worker, in ``setup()``, and shared
by every DoFn of the process that talks to the same cluster (a Cluster owns an event loop,
connection pools and metadata: one per process is the driver's advice).

Secrets: the password is resolved on the worker from an environment variable or a file where
possible, and it is excluded from ``repr`` so it never reaches a log line.
"""

from __future__ import annotations

import atexit
import os
import ssl
import threading
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    FallthroughRetryPolicy,
    TokenAwarePolicy,
)
from cassandra.query import dict_factory

from transforms import values as _values  # noqa: F401 - empty values decoded as EMPTY


@dataclass(frozen=True)
class TlsOptions:
    """Client-to-node encryption. ``ca_certs`` is the PEM file of certificates to trust."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_certs)
        context.check_hostname = self.check_hostname
        if not self.check_hostname and not self.ca_certs:
            context.verify_mode = ssl.CERT_NONE
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context


@dataclass(frozen=True)
class CassandraConnection:
    """Where a cluster is and how to log in. Hashable: it keys the per-process Cluster cache."""

    hosts: tuple[str, ...]
    port: int = 9042
    local_dc: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsOptions | None = None
    protocol_version: int | None = None
    connect_timeout: float = 10.0
    request_timeout: float = 30.0

    def resolve_password(self) -> str | None:
        if self.password is not None:
            return self.password
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise RuntimeError(f"environment variable {self.password_env} (the password "
                                   "for Cassandra) is not set on this worker")
            return value
        if self.password_file:  # a local file, or gs://... readable by the worker
            with FileSystems.open(self.password_file) as handle:
                return handle.read().decode("utf-8").strip()
        return None

    def describe(self) -> str:
        """Hosts and port, for messages: never the password."""
        return f"{','.join(self.hosts)}:{self.port}"

    def new_cluster(self) -> Cluster:
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(self.local_dc)),
            request_timeout=self.request_timeout,
            row_factory=dict_factory,
            # transforms.retry decides every retry (and counts and logs it): the driver's own
            # policy would retry some errors silently and wrap the last one in NoHostAvailable.
            retry_policy=FallthroughRetryPolicy(),
        )
        auth_provider = None
        if self.username:
            auth_provider = PlainTextAuthProvider(self.username, self.resolve_password() or "")
        options = {}
        if self.protocol_version is not None:
            options["protocol_version"] = self.protocol_version
        return Cluster(
            list(self.hosts),
            port=self.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth_provider,
            ssl_context=self.tls.context() if self.tls else None,
            connect_timeout=self.connect_timeout,
            control_connection_timeout=self.connect_timeout,
            # A restarted node is seen within seconds (the driver's default waits up to 10 min
            # between attempts), so a run waiting out an outage carries on soon after it ends.
            reconnection_policy=ExponentialReconnectionPolicy(0.5, 4.0),
            monitor_reporting_enabled=False,
            **options,
        )


class _SharedSessions:
    """One connected Session per CassandraConnection per process, counted by its users."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[CassandraConnection, tuple[Session, int]] = {}

    def acquire(self, connection: CassandraConnection) -> Session:
        with self._lock:
            if connection in self._sessions:
                session, users = self._sessions[connection]
                self._sessions[connection] = (session, users + 1)
                return session
            session = connection.new_cluster().connect()
            self._sessions[connection] = (session, 1)
            return session

    def release(self, connection: CassandraConnection) -> None:
        with self._lock:
            if connection not in self._sessions:
                return
            session, users = self._sessions[connection]
            if users > 1:
                self._sessions[connection] = (session, users - 1)
                return
            del self._sessions[connection]
        session.cluster.shutdown()

    def shutdown_all(self) -> None:
        with self._lock:
            sessions = [session for session, _ in self._sessions.values()]
            self._sessions.clear()
        for session in sessions:
            session.cluster.shutdown()


def table_metadata(session, keyspace: str, table: str):
    """The driver's metadata of a table, or None. A session shared by the process may have
    been made before the table was created: its metadata is refreshed once before giving up."""
    for attempt in range(2):
        found = session.cluster.metadata.keyspaces.get(keyspace)
        found = found.tables.get(table) if found is not None else None
        if found is not None or attempt:
            return found
        session.cluster.refresh_schema_metadata()
    return None


def finished(future):
    """``future.result()``, then the cycle the driver leaves behind broken.

    A ResponseFuture keeps its timeout Timer (``_timer``), whose callback is a method of the
    future: a reference cycle. Reference counting never frees a finished future, so it and
    what it holds (a page of rows, a batch of serialized values) wait for the cyclic garbage
    collector (which found all 100,000 rows of a test copy there). Dropping the future's
    reference to its timer, cancelled by then, lets reference counting free both."""
    try:
        return future.result()
    finally:
        if getattr(future, "_timer", None) is not None:
            future._timer = None


shared_sessions = _SharedSessions()
atexit.register(shared_sessions.shutdown_all)
