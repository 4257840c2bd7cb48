"""Start, stop and inspect real Apache Cassandra 5.0 nodes on loopback, without Docker.

The server jars come from Maven Central (``pom.xml`` beside this file) into a git-ignored cache
under ``.local/cassandra/lib``; every node gets its own run directory (cassandra.yaml,
logback.xml, data, commitlog, logs, pid file) under ``.local/cassandra/nodes/<address>``.

Node *i* (1-based) listens on 127.0.0.<i>, so several nodes share the standard ports. They
are either independent single-node clusters (``--topology clusters``: a real source cluster and
a real target cluster) or one cluster (``--topology ring``).

Only the standard library is used: the launcher runs before the project's virtualenv exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CASSANDRA_VERSION = "5.0.8"
JAMM_JAR = "jamm-0.4.0.jar"
CQL_PORT = 9042
STORAGE_PORT = 7000
JMX_BASE_PORT = 7200
MURMUR3_MIN = -(2**63)
MURMUR3_SPAN = 2**64
DEFAULT_SUPERUSER = ("cassandra", "cassandra")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().parent / "pom.xml"

# conf/jvm17-server.options and conf/jvm-server.options of Cassandra 5.0.
JVM17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Xss256k",
    "-Djava.net.preferIPv4Stack=true",
    "-Dchronicle.analytics.disable=true",
    "-XX:+UseG1GC",
    "-XX:+HeapDumpOnOutOfMemoryError",
]

LOGBACK_XML = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="WARN"><appender-ref ref="FILE"/></root>
</configuration>
"""


class LauncherError(Exception):
    """A failure with a message that names the cause (and the log to read, where there is one)."""


@dataclass(frozen=True)
class NodeOptions:
    """What a node is started with; a running node is reused only when these match."""

    cluster_name: str
    address: str
    seeds: tuple[str, ...]
    initial_token: int | None
    num_tokens: int
    auth: bool = False
    tls: bool = False
    heap: str = "1G"
    extra: dict = field(default_factory=dict)
    # A node a test kills: every acknowledged write is in the commit log (batch sync) and the
    # system tables are logged too (no unsafesystem), so a kill -9 loses nothing acknowledged.
    durable: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        return data


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_CASSANDRA_HOME", PROJECT_ROOT / ".local" / "cassandra"))


def lib_dir() -> Path:
    return state_dir() / "lib"


def node_dir(address: str) -> Path:
    return state_dir() / "nodes" / address


def node_address(index: int) -> str:
    return f"127.0.0.{index}"


def plan_nodes(count: int, topology: str, *, auth: bool, tls: bool, heap: str,
               num_tokens: int, extra: dict, first: int = 1,
               durable: bool = False) -> list[NodeOptions]:
    """Node options for ``count`` nodes on 127.0.0.<first>... in the given topology."""
    addresses = [node_address(first + i) for i in range(count)]
    nodes = []
    for position, address in enumerate(addresses):
        if topology == "clusters":
            cluster, seeds, token_index, ring_size = f"local-{address}", (address,), 0, 1
        elif topology == "ring":
            cluster, seeds, token_index, ring_size = "local-ring", tuple(addresses), position, count
        else:
            raise LauncherError(f"unknown topology {topology!r}: use 'clusters' or 'ring'")
        token = None
        if num_tokens == 1:
            token = MURMUR3_MIN + token_index * (MURMUR3_SPAN // ring_size)
        nodes.append(NodeOptions(cluster, address, seeds, token, num_tokens, auth, tls, heap,
                                 dict(extra), durable))
    return nodes


# --------------------------------------------------------------------------- jars


def ensure_jars() -> Path:
    """Resolve the server jars once; later calls find them in the cache and download nothing."""
    lib = lib_dir()
    marker = lib / f".complete-{CASSANDRA_VERSION}"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError("mvn (Apache Maven) is not on PATH: it is needed once to fetch the "
                            f"Cassandra {CASSANDRA_VERSION} jars from Maven Central")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
               "-Djmc5.path=/tmp", "-Djmc6.path=/tmp", "-Dvisualvm.path=/tmp"]
    print(f"fetching Cassandra {CASSANDRA_VERSION} jars with Maven into {lib}", file=sys.stderr)
    completed = subprocess.run(command, capture_output=True, text=True)
    server_jar = staging / f"cassandra-all-{CASSANDRA_VERSION}.jar"
    if completed.returncode != 0 or not server_jar.exists():
        raise LauncherError("Maven could not fetch the Cassandra jars:\n"
                            + (completed.stdout + completed.stderr)[-3000:])
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    marker.touch()
    return lib


# --------------------------------------------------------------------------- processes


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / "cassandra.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_cassandra(pid: int, directory: Path) -> bool:
    """True when pid is alive and is the CassandraDaemon started for this run directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "CassandraDaemon" in cmdline and str(directory) in cmdline


def _cql_answers(address: str, port: int = CQL_PORT, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def running_node(address: str) -> NodeOptions | None:
    """The options of the node at this address if the process we started there is alive."""
    directory = node_dir(address)
    pid = _read_pid(directory)
    if pid is None or not _is_our_cassandra(pid, directory):
        return None
    try:
        data = json.loads((directory / "node.json").read_text())
    except (OSError, ValueError):
        return None
    data["seeds"] = tuple(data["seeds"])
    return NodeOptions(**data)


# --------------------------------------------------------------------------- configuration


def _yaml_scalar(value) -> str:
    return json.dumps(value)  # JSON scalars, lists and maps are valid YAML flow style


def _cassandra_yaml(options: NodeOptions, directory: Path) -> str:
    settings = {
        "cluster_name": options.cluster_name,
        "num_tokens": options.num_tokens,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "endpoint_snitch": "SimpleSnitch",
        "listen_address": options.address,
        "rpc_address": options.address,
        "storage_port": STORAGE_PORT,
        "native_transport_port": CQL_PORT,
        "start_native_transport": True,
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        "authenticator": "PasswordAuthenticator" if options.auth else "AllowAllAuthenticator",
        "authorizer": "CassandraAuthorizer" if options.auth else "AllowAllAuthorizer",
        "role_manager": "CassandraRoleManager",
        "auto_snapshot": False,
        "auto_bootstrap": False,
        "storage_compatibility_mode": "NONE",
        "concurrent_compactors": 1,
        "memtable_heap_space": "256MiB",
        "key_cache_size": "16MiB",
        "file_cache_size": "64MiB",
        "data_file_directories": [str(directory / "data")],
        "commitlog_directory": str(directory / "commitlog"),
        "saved_caches_directory": str(directory / "saved_caches"),
        "hints_directory": str(directory / "hints"),
        "cdc_raw_directory": str(directory / "cdc_raw"),
    }
    if options.durable:
        settings["commitlog_sync"] = "batch"
        del settings["commitlog_sync_period"]
    if options.initial_token is not None:
        settings["initial_token"] = str(options.initial_token)
    if options.tls:
        settings["client_encryption_options"] = {
            "enabled": True,
            "optional": False,
            "keystore": str(directory / "tls" / "keystore.jks"),
            "keystore_password": "cassandra",
        }
    settings.update(options.extra)
    lines = [f"{key}: {_yaml_scalar(value)}" for key, value in settings.items()]
    seeds = ",".join(options.seeds)
    lines.append("seed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n"
                 f"    parameters:\n      - seeds: {_yaml_scalar(seeds)}")
    return "\n".join(lines) + "\n"


def _make_tls_material(options: NodeOptions, directory: Path) -> Path:
    """A self-signed node certificate (JDK keytool) and its PEM copy for clients to trust."""
    keytool = shutil.which("keytool")
    if keytool is None:
        raise LauncherError("keytool (from the JDK) is not on PATH: it is needed for --tls")
    tls = directory / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    keystore = tls / "keystore.jks"
    subprocess.run([keytool, "-genkeypair", "-noprompt", "-alias", "node", "-keyalg", "RSA",
                    "-keysize", "2048", "-validity", "3650", "-dname", f"CN={options.address}",
                    "-ext", f"SAN=ip:{options.address}", "-keystore", str(keystore),
                    "-storepass", "cassandra", "-keypass", "cassandra", "-storetype", "JKS"],
                   check=True, capture_output=True)
    pem = tls / "node.pem"
    subprocess.run([keytool, "-exportcert", "-rfc", "-alias", "node", "-keystore", str(keystore),
                    "-storepass", "cassandra", "-file", str(pem)], check=True, capture_output=True)
    return pem


# --------------------------------------------------------------------------- start / stop


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise LauncherError("java is not on PATH (Java 17 is needed to run Cassandra 5.0)")
    return java


def _start_process(options: NodeOptions, index: int, lib: Path,
                   fresh: bool = True) -> subprocess.Popen:
    """Start a node's process: in a new run directory, or (``fresh`` false: a restart) on the
    data it left."""
    directory = node_dir(options.address)
    if fresh:
        shutil.rmtree(directory, ignore_errors=True)
    (directory / "conf").mkdir(parents=True, exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    if options.tls and fresh:
        _make_tls_material(options, directory)
    (directory / "conf" / "cassandra.yaml").write_text(_cassandra_yaml(options, directory))
    (directory / "conf" / "logback.xml").write_text(LOGBACK_XML)
    (directory / "node.json").write_text(json.dumps(options.to_json(), indent=2))
    command = [
        _java(), f"-Xms{options.heap}", f"-Xmx{options.heap}", *JVM17_FLAGS,
        f"-javaagent:{lib / JAMM_JAR}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{directory / 'conf' / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={directory}",
        f"-Dcassandra.logdir={directory / 'logs'}",
        f"-Dlogback.configurationFile={directory / 'conf' / 'logback.xml'}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=0",
        *([] if options.durable else ["-Dcassandra.unsafesystem=true"]),
        f"-Dcassandra.jmx.local.port={JMX_BASE_PORT + index}",
        "-cp", f"{directory / 'conf'}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
    stdout = open(directory / "logs" / "stdout.log", "ab")
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, cwd=directory)
    (directory / "cassandra.pid").write_text(str(process.pid))
    return process


def _wait_ready(options: NodeOptions, process: subprocess.Popen, timeout: float) -> None:
    directory = node_dir(options.address)
    log = directory / "logs" / "system.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LauncherError(
                f"Cassandra at {options.address} exited with code {process.returncode} during "
                f"startup; see {log} and {directory / 'logs' / 'stdout.log'}:\n"
                + _log_tail(directory / "logs" / "stdout.log") + "\n" + _log_tail(log, 10))
        if _cql_answers(options.address):
            return
        time.sleep(0.25)
    _terminate(directory)
    raise LauncherError(f"Cassandra at {options.address} did not answer CQL on port {CQL_PORT} "
                        f"within {timeout:.0f}s; see {log}:\n{_log_tail(log)}")


def start(nodes: list[NodeOptions], timeout: float = 240.0) -> list[dict]:
    """Start (or reuse) each node in order and wait until CQL answers; return what was done."""
    lib = ensure_jars()
    report = []
    for options in nodes:
        index = int(options.address.rsplit(".", 1)[1])
        running = running_node(options.address)
        if running is not None:
            if running != options:
                raise LauncherError(
                    f"a node started with other options is already up at {options.address} "
                    f"(pid file {node_dir(options.address) / 'cassandra.pid'}); "
                    "run `python -m tools.local_cassandra stop` first")
            if not _cql_answers(options.address):
                raise LauncherError(f"the node at {options.address} is running but does not "
                                    f"answer CQL; see {node_dir(options.address)}/logs/system.log")
            report.append(_describe(options, "reused"))
            continue
        _terminate(node_dir(options.address))  # a stale pid file from an interrupted run
        for port in (CQL_PORT, STORAGE_PORT):
            if not _port_free(options.address, port):
                raise LauncherError(
                    f"port {options.address}:{port} is in use by another process, so Cassandra "
                    "cannot start there (`ss -ltnp` shows which one)")
        started = time.monotonic()
        process = _start_process(options, index, lib)
        _wait_ready(options, process, timeout)
        report.append(_describe(options, f"started in {time.monotonic() - started:.1f}s"))
    _wait_ring_settled(nodes, timeout)
    return report


def _wait_ring_settled(nodes: list[NodeOptions], timeout: float) -> None:
    """Nodes of one cluster answer CQL before gossip has told them of each other; until then a
    client sees part of the ring. Wait until each node has logged every peer as UP."""
    deadline = time.monotonic() + timeout
    for options in nodes:
        peers = [peer.address for peer in nodes
                 if peer.cluster_name == options.cluster_name and peer.address != options.address]
        log = node_dir(options.address) / "logs" / "system.log"
        while peers:
            text = log.read_text(errors="replace") if log.exists() else ""
            peers = [peer for peer in peers if f"/{peer}:{STORAGE_PORT} is now UP" not in text]
            if not peers:
                break
            if time.monotonic() > deadline:
                raise LauncherError(f"the node at {options.address} has not seen "
                                    f"{', '.join(peers)} join its ring within {timeout:.0f}s; "
                                    f"see {log}")
            time.sleep(0.25)


def _describe(options: NodeOptions, what: str) -> dict:
    directory = node_dir(options.address)
    description = {"address": options.address, "port": CQL_PORT, "cluster": options.cluster_name,
                   "state": what, "log": str(directory / "logs" / "system.log")}
    if options.tls:
        description["ca_cert"] = str(directory / "tls" / "node.pem")
    if options.auth:
        description["username"] = DEFAULT_SUPERUSER[0]
    return description


def _terminate(directory: Path, grace: float = 30.0) -> bool:
    """End the process recorded in this run directory, if it is ours; True if one was ended."""
    pid = _read_pid(directory)
    ended = False
    if pid is not None and _is_our_cassandra(pid, directory):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while _is_our_cassandra(pid, directory) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_our_cassandra(pid, directory):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _is_our_cassandra(pid, directory):
                time.sleep(0.1)
        ended = True
    (directory / "cassandra.pid").unlink(missing_ok=True)
    return ended


def kill(address: str, signal_number: int = signal.SIGKILL, timeout: float = 60.0) -> None:
    """Send a signal to a running node (SIGKILL: a crash; SIGTERM: an operator's stop) and
    wait until its process is gone; its data stays for ``restart``."""
    directory = node_dir(address)
    pid = _read_pid(directory)
    if pid is None or not _is_our_cassandra(pid, directory):
        raise LauncherError(f"no node of ours is running at {address}")
    os.killpg(pid, signal_number)
    deadline = time.monotonic() + timeout
    while _is_our_cassandra(pid, directory):
        if time.monotonic() > deadline:
            raise LauncherError(f"the node at {address} did not exit within {timeout:.0f}s")
        time.sleep(0.1)


def restart(address: str, timeout: float = 240.0) -> None:
    """Start a node that was killed or stopped again, on the data it left, with the options it
    had; wait until CQL answers."""
    directory = node_dir(address)
    if running_node(address) is not None:
        raise LauncherError(f"the node at {address} is still running")
    try:
        data = json.loads((directory / "node.json").read_text())
    except (OSError, ValueError):
        raise LauncherError(f"no node was started at {address} before") from None
    data["seeds"] = tuple(data["seeds"])
    options = NodeOptions(**data)
    index = int(address.rsplit(".", 1)[1])
    process = _start_process(options, index, ensure_jars(), fresh=False)
    _wait_ready(options, process, timeout)


def stop(addresses: list[str] | None = None) -> list[str]:
    """Stop the nodes this launcher started (all of them by default); return their addresses."""
    nodes_root = state_dir() / "nodes"
    if addresses is None:
        addresses = sorted(p.name for p in nodes_root.iterdir()) if nodes_root.exists() else []
    stopped = []
    for address in addresses:
        if _terminate(node_dir(address)):
            stopped.append(address)
    return stopped


def status() -> list[dict]:
    nodes_root = state_dir() / "nodes"
    if not nodes_root.exists():
        return []
    report = []
    for directory in sorted(nodes_root.iterdir()):
        options = running_node(directory.name)
        if options is None:
            report.append({"address": directory.name, "state": "stopped"})
        else:
            state = "up" if _cql_answers(options.address) else "starting or unresponsive"
            report.append(_describe(options, state) | {"pid": _read_pid(directory)})
    return report
