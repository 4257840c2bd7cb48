"""Real Apache Cassandra nodes (5.0, 4.1, 4.0) on loopback for tests, the demo and benchmarks."""

from tools.local_cassandra.launcher import (
    CASSANDRA_VERSION,
    TESTED_RELEASES,
    LauncherError,
    NodeOptions,
    ensure_jars,
    kill,
    plan_nodes,
    resolve_version,
    restart,
    running_node,
    start,
    status,
    stop,
)

__all__ = ["CASSANDRA_VERSION", "TESTED_RELEASES", "LauncherError", "NodeOptions", "ensure_jars",
           "kill", "plan_nodes", "resolve_version", "restart", "running_node", "start", "status",
           "stop"]
