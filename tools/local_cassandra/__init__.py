"""Real Apache Cassandra 5.0 nodes on loopback for tests, the demo and the benchmarks."""

from tools.local_cassandra.launcher import (
    LauncherError,
    NodeOptions,
    ensure_jars,
    kill,
    plan_nodes,
    restart,
    running_node,
    start,
    status,
    stop,
)

__all__ = ["LauncherError", "NodeOptions", "ensure_jars", "kill", "plan_nodes", "restart",
           "running_node", "start", "status", "stop"]
