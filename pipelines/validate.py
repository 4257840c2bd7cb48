"""Checks against the live clusters, made before anything is written.

Both clusters must answer; every source table and target table must exist; the target's primary
key must be the source's (same columns, same types, same order) and every copied column must
exist on the target with the same type. Problems are collected and raised together as a
``SettingsError`` that names the file, the table and the columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cassandra.cluster import NoHostAvailable

from pipelines.config import ClusterSettings, Settings, SettingsError, TableMapping

_LOG = logging.getLogger(__name__)

# Types that Cassandra stores identically under two names.
_TYPE_ALIASES = {"varchar": "text"}


@dataclass(frozen=True)
class TablePlan:
    """What the pipeline needs to know about one table, learnt from the clusters."""

    mapping: TableMapping
    source_label: str
    target_label: str
    columns: tuple[str, ...]
    estimated_partitions: int | None


def _normalise(cql_type: str) -> str:
    return _TYPE_ALIASES.get(cql_type, cql_type)


def _connect(name: str, cluster_settings: ClusterSettings):
    connection = cluster_settings.connection
    cluster = connection.new_cluster()
    try:
        return cluster, cluster.connect()
    except NoHostAvailable as error:
        cluster.shutdown()
        reasons = "; ".join(f"{host}: {reason}" for host, reason in error.errors.items())
        raise SettingsError(f"{name}.HOSTS: cannot connect to {connection.describe()} "
                            f"({reasons or error})") from None
    except Exception as error:  # noqa: BLE001 - authentication, TLS, DNS: all named to the user
        cluster.shutdown()
        raise SettingsError(f"{name}: cannot connect to {connection.describe()}: "
                            f"{type(error).__name__}: {error}") from None


def _key_signature(columns) -> list[tuple[str, str]]:
    return [(column.name, _normalise(column.cql_type)) for column in columns]


def _estimated_partitions(session, keyspace: str, table: str) -> int | None:
    """Sum of system.size_estimates over every node (each holds its own primary ranges)."""
    total, found = 0, False
    for host in session.cluster.metadata.all_hosts():
        if not host.is_up:
            continue
        try:
            rows = session.execute(
                "SELECT partitions_count FROM system.size_estimates "
                "WHERE keyspace_name = %s AND table_name = %s", (keyspace, table), host=host)
        except Exception as error:  # noqa: BLE001 - an estimate is optional
            _LOG.debug("no size estimate from %s: %s", host, error)
            continue
        for row in rows:
            total += row["partitions_count"]
            found = True
    return total if found else None


def check_against_clusters(settings: Settings) -> list[TablePlan]:
    """Connect to both clusters, check every table; return a plan per table or raise."""
    problems: list[str] = []
    try:
        source_cluster, source = _connect("SOURCE", settings.source)
    except SettingsError as error:
        raise SettingsError(f"{settings.path}: {error}") from None
    try:
        target_cluster, target = _connect("TARGET", settings.target)
    except SettingsError as error:
        source_cluster.shutdown()
        raise SettingsError(f"{settings.path}: {error}") from None
    try:
        source_keyspace = source_cluster.metadata.keyspaces.get(settings.source.keyspace)
        target_keyspace = target_cluster.metadata.keyspaces.get(settings.target.keyspace)
        if source_keyspace is None:
            problems.append(f"SOURCE.KEYSPACE: keyspace {settings.source.keyspace} does not "
                            f"exist on {settings.source.connection.describe()}")
        if target_keyspace is None:
            problems.append(f"TARGET.KEYSPACE: keyspace {settings.target.keyspace} does not "
                            f"exist on {settings.target.connection.describe()}")
        plans = []
        if source_keyspace is not None and target_keyspace is not None:
            for index, mapping in enumerate(settings.tables):
                plan = _check_table(settings, index, mapping, source, source_keyspace,
                                    target_keyspace, problems)
                if plan is not None:
                    plans.append(plan)
    finally:
        source_cluster.shutdown()
        target_cluster.shutdown()
    if problems:
        raise SettingsError(f"{settings.path}: the clusters do not match the settings:\n  - "
                            + "\n  - ".join(problems))
    return plans


def _check_table(settings, index, mapping, source, source_keyspace, target_keyspace,
                 problems) -> TablePlan | None:
    where = f"TABLES[{index}]"
    source_label, target_label = settings.source_label(mapping), settings.target_label(mapping)
    source_table = source_keyspace.tables.get(mapping.source)
    target_table = target_keyspace.tables.get(mapping.target)
    if source_table is None:
        problems.append(f"{where}.SOURCE: table {source_label} does not exist")
    if target_table is None:
        problems.append(f"{where}.TARGET: table {target_label} does not exist")
    if source_table is None or target_table is None:
        return None
    before = len(problems)
    for part, source_key, target_key in (
            ("partition key", source_table.partition_key, target_table.partition_key),
            ("clustering key", source_table.clustering_key, target_table.clustering_key)):
        if _key_signature(source_key) != _key_signature(target_key):
            problems.append(
                f"{where}: the {part} of {target_label} "
                f"({', '.join(f'{n} {t}' for n, t in _key_signature(target_key)) or 'none'}) "
                f"differs from that of {source_label} "
                f"({', '.join(f'{n} {t}' for n, t in _key_signature(source_key)) or 'none'})")
    missing, mismatched = [], []
    for name, column in source_table.columns.items():
        target_column = target_table.columns.get(name)
        if target_column is None:
            missing.append(name)
        elif _normalise(target_column.cql_type) != _normalise(column.cql_type):
            mismatched.append(f"{name} is {column.cql_type} in {source_label} but "
                              f"{target_column.cql_type} in {target_label}")
    if missing:
        problems.append(f"{where}: {target_label} has no column {', '.join(missing)} "
                        f"(present in {source_label})")
    problems.extend(f"{where}: column {text}" for text in mismatched)
    counters = [name for name, column in source_table.columns.items()
                if column.cql_type == "counter"]
    if counters:
        problems.append(f"{where}: {source_label} is a counter table ({', '.join(counters)}); "
                        "counter tables are not supported yet")
    if mapping.partitions is not None:
        width = len(source_table.partition_key)
        for key in mapping.partitions:
            if len(key) != width:
                problems.append(f"{where}.PARTITIONS: {list(key)} has {len(key)} values but "
                                f"the partition key of {source_label} has {width}")
    if len(problems) > before:
        return None
    return TablePlan(mapping, source_label, target_label, tuple(source_table.columns),
                     _estimated_partitions(source, settings.source.keyspace, mapping.source))
