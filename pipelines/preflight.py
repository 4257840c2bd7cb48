"""Checks against the live clusters, made before anything is written.

Both clusters must answer; every source table and target table must exist; the target's primary
key must be the source's (same columns, same types, same order), every copied column must
exist on the target with the same type, every user type a copied column uses must have the same
fields on the target (same names, types and order: Cassandra matches types by name only), no
two source columns may land on one target column, and every listed partition key must fit the
source's partition key columns. Problems are collected and raised together as a
``SettingsError`` that names the file, the table and the columns.

The two clusters may run different releases (``transforms.versions``). A column of a type the
target's release lacks (``vector`` before 5.0) and a writetime window over columns whose
writetimes the source's release cannot report are refused before any table is created; what
the reader and the writer do differently for the releases at hand is logged once, here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import re
import ssl
import uuid
from dataclasses import dataclass

from cassandra import AuthenticationFailed, OperationTimedOut
from cassandra.cluster import NoHostAvailable, UnresolvableContactPoints
from cassandra.connection import ConnectionShutdown
from cassandra.cqltypes import _casstypes

from pipelines.config import (
    ALL_TABLES,
    ClusterSettings,
    Settings,
    SettingsError,
    TableMapping,
    unique_partitions,
)
from transforms import cells, versions
from transforms.cql import quote
from transforms.lists import list_columns

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
    counters: bool = False
    # The listed partition keys as the driver binds them (UUID strings made UUIDs), or None
    # for the whole ring; ``mapping.partitions`` keeps them as the settings wrote them.
    partitions: tuple[tuple, ...] | None = None
    # From system.size_estimates (bytes: partitions x mean partition size) and a sample of
    # the table's first rows (rows per partition); None where the cluster has no estimate yet.
    estimated_bytes: int | None = None
    estimated_rows: int | None = None
    # The CQL that creates the target table and its user types (CREATE_TARGET_TABLES): run by
    # a migration, only shown by a plan.
    create_cql: tuple[str, ...] = ()
    # Copied columns with a cell per element: non-frozen collections and user types.
    multi_cell: tuple[str, ...] = ()

    def serialized(self, read: cells.CellOptions) -> bool:
        """Whether rows can go from the reader to the writer with their values as the native
        protocol carries them, neither decoded nor serialized again: the columns have the same
        types on both sides (checked before), and nothing between needs a value: no counters
        (reconciled), no CONSTANTS, no writetime window, and no collection whose cells carry
        their own writetimes or whose list the writer checks against the target."""
        mapping = self.mapping
        return not (self.counters or mapping.constants or mapping.writetime_from is not None
                    or mapping.writetime_to is not None or (self.multi_cell and read.any))


def _normalise(cql_type: str) -> str:
    return _TYPE_ALIASES.get(cql_type, cql_type)


def connect(name: str, cluster_settings: ClusterSettings, as_launcher: bool = True):
    """(Cluster, Session) of one side; a ``SettingsError`` naming the setting at fault when the
    cluster cannot be reached or refuses us (``name`` is SOURCE or TARGET). The driver's own
    error, with its traceback, goes to the log at DEBUG; the message never holds a password.

    ``as_launcher``: with the launcher's own login (``{name}.LAUNCHER``) when the settings give
    one, for the checks and the ledger; else with the workers' login (a replay writes rows)."""
    connection = cluster_settings.connection
    if as_launcher and cluster_settings.launcher_login is not None:
        connection, name = cluster_settings.launcher_login, f"{name}.LAUNCHER"
    cluster = None
    try:
        cluster = connection.new_cluster()
        return cluster, cluster.connect()
    except Exception as error:  # noqa: BLE001 - every cause is named to the user below
        if cluster is not None:
            cluster.shutdown()
        _LOG.debug("%s: cannot connect to %s", name, connection.describe(), exc_info=True)
        raise SettingsError(connection_problem(name, connection, error)) from None


def _password_setting(name: str, connection) -> str:
    if connection.password_env:
        return f"{name}.PASSWORD_ENV (variable {connection.password_env})"
    if connection.password_file:
        return f"{name}.PASSWORD_FILE ({connection.password_file})"
    if connection.password is not None:
        return f"{name}.PASSWORD"
    return f"{name}.PASSWORD_ENV (none is set)"


def connection_problem(name: str, connection, error: Exception) -> str:
    """What a failed connection means for the user, led by the setting at fault."""
    where = connection.describe()
    if isinstance(error, UnresolvableContactPoints):
        return (f"{name}.HOSTS: no host of {', '.join(connection.hosts)} resolves to an address "
                f"(check the names in {name}.HOSTS)")
    reasons = dict(error.errors) if isinstance(error, NoHostAvailable) else {where: error}
    text = "; ".join(f"{host}: {type(reason).__name__}: {reason}"
                     for host, reason in reasons.items()) or str(error)
    causes = list(reasons.values())
    if any(isinstance(cause, AuthenticationFailed) for cause in causes):
        if not connection.username:
            return (f"{name}.USERNAME: {where} requires a login; set {name}.USERNAME and "
                    f"{name}.PASSWORD_ENV (or {name}.PASSWORD_FILE) ({text})")
        return (f"{name}.USERNAME / {_password_setting(name, connection)}: {where} refused the "
                f"login of user {connection.username!r}: wrong user name or password ({text})")
    if connection.protocol_version is not None and "protocol" in text.lower():
        # A release speaks the protocol versions of its time (4.x and 5.0: 3 to 5; 6 is a
        # beta in 5.0): name the setting, not the hosts.
        return (f"{name}.PROTOCOL_VERSION: {where} does not accept protocol version "
                f"{connection.protocol_version} ({text}); null negotiates the newest both "
                "sides speak")
    if connection.tls is not None and any(
            isinstance(cause, ssl.SSLError) or "[SSL" in str(cause) for cause in causes):
        # The driver reports a refused certificate as an OSError whose text holds the SSL one.
        return (f"{name}.SSL: the TLS handshake with {where} failed; check {name}.SSL.CA_CERTS "
                f"(the certificates to trust), {name}.SSL.CERTFILE/KEYFILE and "
                f"{name}.SSL.CHECK_HOSTNAME ({text})")
    if isinstance(error, NoHostAvailable):
        hint = ""
        if connection.tls is None and any(_closed_by_server(cause) for cause in causes):
            hint = (f"; the node closed the connection: if it requires client encryption, set "
                    f"{name}.SSL.ENABLED: true")
        return (f"{name}.HOSTS: cannot connect to {where} (check {name}.HOSTS and {name}.PORT)"
                f" ({text}){hint}")
    return f"{name}: cannot connect to {where}: {type(error).__name__}: {error}"


def _closed_by_server(cause: BaseException) -> bool:
    """A node that takes the TCP connection but drops it at the first message: what a node that
    requires TLS does to a plain client."""
    if isinstance(cause, (ConnectionShutdown, ConnectionResetError, ConnectionAbortedError)):
        return True
    return not isinstance(cause, OperationTimedOut) and "closed" in str(cause).lower()


def _key_signature(columns) -> list[tuple[str, str]]:
    return [(column.name, _normalise(column.cql_type)) for column in columns]


def _size_estimate(session, keyspace: str, table: str) -> tuple[int | None, int | None]:
    """(partitions, bytes) summed over system.size_estimates of every node (each holds its own
    primary ranges); (None, None) when no node has an estimate (yet: Cassandra records them
    every few minutes, from flushed data only)."""
    partitions = size = 0
    found = False
    for host in session.cluster.metadata.all_hosts():
        if not host.is_up:
            continue
        try:
            rows = session.execute(
                "SELECT partitions_count, mean_partition_size FROM system.size_estimates "
                "WHERE keyspace_name = %s AND table_name = %s", (keyspace, table), host=host)
        except Exception as error:  # noqa: BLE001 - an estimate is optional
            _LOG.debug("no size estimate from %s: %s", host, error)
            continue
        for row in rows:
            partitions += row["partitions_count"]
            size += row["partitions_count"] * row["mean_partition_size"]
            found = True
    return (partitions, size) if found else (None, None)


ROWS_SAMPLE = 5_000


def _rows_per_partition(session, keyspace: str, table) -> float | None:
    """Rows per partition in the first ROWS_SAMPLE rows of the ring (1 without clustering
    columns); None for an empty table. A sample, so an estimate: partitions of very different
    sizes make it rough."""
    if not table.clustering_key:
        return 1.0
    keys = [column.name for column in table.partition_key]
    try:
        rows = list(session.execute(
            f"SELECT {', '.join(quote(name) for name in keys)} FROM {quote(keyspace)}."
            f"{quote(table.name)} LIMIT {ROWS_SAMPLE}"))
    except Exception as error:  # noqa: BLE001 - an estimate is optional
        _LOG.debug("no rows sample of %s.%s: %s", keyspace, table.name, error)
        return None
    if not rows:
        return None
    partitions = [tuple(row[name] for name in keys) for row in rows]
    if len(rows) == ROWS_SAMPLE and len(set(partitions)) > 1:
        last = partitions[-1]  # cut short by the LIMIT: left out
        partitions = [key for key in partitions if key != last]
    return len(partitions) / len(set(partitions))


@dataclass(frozen=True)
class Clusters:
    """Sessions of both clusters, open for the launcher's own work (checks, the ledger)."""

    source: object
    target: object


@contextlib.contextmanager
def connected(settings: Settings):
    """Both clusters, connected once for the launcher; SettingsError naming the side that
    cannot be reached."""
    try:
        source_cluster, source = connect("SOURCE", settings.source)
    except SettingsError as error:
        raise SettingsError(f"{settings.path}: {error}") from None
    try:
        target_cluster, target = connect("TARGET", settings.target)
    except SettingsError as error:
        source_cluster.shutdown()
        raise SettingsError(f"{settings.path}: {error}") from None
    try:
        yield Clusters(source, target)
    finally:
        source_cluster.shutdown()
        target_cluster.shutdown()


def check_against_clusters(settings: Settings, clusters: Clusters | None = None,
                           dry_run: bool = False) -> list[TablePlan]:
    """Check every table against both clusters (connected here unless given); return a plan
    per table or raise.

    With CREATE_TARGET_TABLES, missing target tables (and the user types they need) are
    created from the source schema, but only once everything else has been checked; with
    ``dry_run`` nothing is created: each plan carries the CQL that would create its table, and
    the table is checked as that CQL would make it."""
    if clusters is None:
        with connected(settings) as clusters:
            return check_against_clusters(settings, clusters, dry_run)
    source, target = clusters.source, clusters.target
    source_cluster, target_cluster = source.cluster, target.cluster
    tables, problems = _expand_tables(settings, source_cluster, target_cluster)
    releases = (versions.oldest_release(source_cluster.metadata),
                versions.oldest_release(target_cluster.metadata))
    if not problems:
        problems += _release_problems(settings, tables, source_cluster, *releases)
    missing = [] if problems else [
        (index, mapping) for index, mapping in tables
        if mapping.target not in target_cluster.metadata.keyspaces[
            settings.target.keyspace].tables]
    created: dict[str, tuple[str, ...]] = {}
    if missing and settings.create_target_tables:
        problems += _create_target_tables(settings, source_cluster, target, missing, created,
                                          dry_run)
    plans = []
    if not problems:
        source_keyspace = source_cluster.metadata.keyspaces[settings.source.keyspace]
        target_keyspace = target_cluster.metadata.keyspaces[settings.target.keyspace]
        if dry_run and created:
            target_keyspace = _AfterCreation(target_keyspace, source_keyspace, missing)
        for index, mapping in tables:
            plan = _check_table(settings, index, mapping, source, source_keyspace,
                                target_keyspace, problems)
            if plan is not None:
                plans.append(dataclasses.replace(plan, create_cql=created.get(mapping.target,
                                                                              ())))
    if not problems:
        _log_release_choices(settings, tables, source_keyspace, *releases)
    if problems:
        raise SettingsError(f"{settings.path}: the clusters do not match the settings:\n  - "
                            + "\n  - ".join(problems))
    return plans


def _expand_tables(settings, source_cluster, target_cluster):
    """(index, mapping) for every table to copy, with "*" replaced by the source's tables."""
    problems = []
    source_keyspace = source_cluster.metadata.keyspaces.get(settings.source.keyspace)
    target_keyspace = target_cluster.metadata.keyspaces.get(settings.target.keyspace)
    if source_keyspace is None:
        problems.append(f"SOURCE.KEYSPACE: keyspace {settings.source.keyspace} does not "
                        f"exist on {settings.source.connection.describe()}")
    if target_keyspace is None:
        problems.append(f"TARGET.KEYSPACE: keyspace {settings.target.keyspace} does not "
                        f"exist on {settings.target.connection.describe()}")
    if problems:
        return [], problems
    tables = []
    for index, mapping in enumerate(settings.tables):
        if mapping.source == ALL_TABLES:
            listed = {table.source for table in settings.tables}
            tables += [(index, TableMapping(name, name)) for name in sorted(source_keyspace.tables)
                       if name not in listed]
            if not source_keyspace.tables:
                problems.append(f"TABLES[{index}]: keyspace {settings.source.keyspace} has no "
                                "tables")
        else:
            tables.append((index, mapping))
    return tables, problems


def _copied_columns(mapping, table):
    """(name, column metadata) of the source columns the copy writes (not skipped)."""
    renames = mapping.renames()
    return [(name, column) for name, column in table.columns.items()
            if renames.get(name, name) is not None]


def _release_problems(settings, tables, source_cluster, source_release,
                      target_release) -> list[str]:
    """What one side's release cannot do for the copy asked: a type the target lacks (also
    inside a user type), a writetime window the source cannot see through."""
    problems = []
    keyspace = source_cluster.metadata.keyspaces[settings.source.keyspace]
    user_types = keyspace.user_types
    target_name = versions.release_name(target_release)
    for index, mapping in tables:
        table = keyspace.tables.get(mapping.source)
        if table is None:
            continue  # reported by the table check
        label = settings.source_label(mapping)
        for name, column in _copied_columns(mapping, table):
            lacking = versions.types_missing(column.cql_type, target_release)
            via = ""
            for type_name in _user_types_in(column.cql_type, user_types, []):
                for field, field_type in zip(user_types[type_name].field_names,
                                             user_types[type_name].field_types, strict=True):
                    nested = versions.types_missing(field_type, target_release)
                    if nested and not lacking:
                        via = f" (field {field} of user type {type_name} is {field_type})"
                    lacking += [found for found in nested if found not in lacking]
            if lacking:
                problems.append(
                    f"TABLES[{index}]: column {name} of {label} is {column.cql_type}{via}: the "
                    f"target runs {target_name}, which has no {' or '.join(lacking)} type "
                    f"(skip the column with COLUMNS: {{{name}: null}})")
        window = [key for key, value in (("WRITETIME_FROM", mapping.writetime_from),
                                         ("WRITETIME_TO", mapping.writetime_to))
                  if value is not None]
        if window and not versions.reports_element_writetimes(source_release):
            blind = [name for name, column in _copied_columns(mapping, table)
                     if cells.is_multi_cell(column.cql_type, set(user_types))]
            if blind:
                problems.append(
                    f"TABLES[{index}].{window[0]}: the source runs "
                    f"{versions.release_name(source_release)}, which cannot tell when the "
                    f"non-frozen collections and user types of {label} ({', '.join(blind)}) "
                    "were written, so a writetime window would leave out rows changed only "
                    "there; skip those columns with COLUMNS, or copy without a window")
    return problems


def _log_release_choices(settings, tables, source_keyspace, source_release,
                         target_release) -> None:
    """Log, once per run, each choice the reader and the writer make for these releases."""
    _LOG.info("SOURCE runs %s, TARGET runs %s", versions.release_name(source_release),
              versions.release_name(target_release))
    user_types = set(source_keyspace.user_types)
    for _, mapping in tables:
        table = source_keyspace.tables[mapping.source]
        copied = _copied_columns(mapping, table)
        label = settings.source_label(mapping)
        multi_cell = [name for name, column in copied
                      if cells.is_multi_cell(column.cql_type, user_types)]
        lists = [name for name in list_columns(table) if name in dict(copied)]
        if multi_cell and (settings.preserve_writetime or settings.preserve_ttl) and (
                not versions.reports_element_writetimes(source_release)):
            _LOG.info("%s: the source (%s) cannot report writetimes or TTLs of non-frozen "
                      "collections and user types: %s are written with the writetime and TTL "
                      "of their row's newest other cells (at the time of the copy, without TTL, "
                      "in a row that has none)", label, versions.release_name(source_release),
                      ", ".join(multi_cell))
        if lists and settings.preserve_writetime:
            if versions.reports_element_writetimes(target_release) and (
                    versions.reports_element_writetimes(source_release)):
                how = ("it holds the same list or one written at the source's writetime or "
                       "later (maxwritetime)")
            else:
                side, release = (("the target", target_release)
                                 if not versions.reports_element_writetimes(target_release)
                                 else ("the source", source_release))
                how = (f"it holds the same list, and written at the time of the copy when it "
                       f"holds another (no writetime comparison: {side} runs "
                       f"{versions.release_name(release)})")
            _LOG.info("%s: the non-frozen lists %s are left alone on the target when %s",
                      label, ", ".join(lists), how)


class _AfterCreation:
    """The target keyspace as CREATE_TARGET_TABLES would leave it (for a plan, which creates
    nothing): its tables and user types, and the missing ones as the source's."""

    def __init__(self, target_keyspace, source_keyspace, missing):
        self.tables = {**target_keyspace.tables, **{
            mapping.target: source_keyspace.tables[mapping.source] for _, mapping in missing
            if mapping.source in source_keyspace.tables}}
        self.user_types = {**source_keyspace.user_types, **target_keyspace.user_types}


def _create_target_tables(settings, source_cluster, target, missing,
                          created: dict[str, tuple[str, ...]], dry_run: bool = False
                          ) -> list[str]:
    """Create the missing target tables, and the user types they use, like the source's;
    ``created`` gets each table's statements (only collected when ``dry_run``)."""
    problems = []
    source_keyspace = source_cluster.metadata.keyspaces[settings.source.keyspace]
    target_metadata = target.cluster.metadata
    source_prefix = f"{quote(settings.source.keyspace)}."
    target_prefix = f"{quote(settings.target.keyspace)}."
    for index, mapping in missing:
        if mapping.columns:
            problems.append(f"TABLES[{index}]: CREATE_TARGET_TABLES cannot create "
                            f"{settings.target_label(mapping)} with renamed columns; create it "
                            "yourself")
            continue
        table = source_keyspace.tables.get(mapping.source)
        if table is None:
            continue  # reported by the table check
        statements = []
        for type_name, user_type in source_keyspace.user_types.items():
            if (type_name not in target_metadata.keyspaces[settings.target.keyspace].user_types
                    and any(type_name in column.cql_type for column in table.columns.values())):
                statements.append(user_type.as_cql_query().replace(
                    f"TYPE {source_prefix}", f"TYPE IF NOT EXISTS {target_prefix}", 1))
        create = table.as_cql_query().replace(
            f"TABLE {source_prefix}{quote(mapping.source)} ",
            f"TABLE IF NOT EXISTS {target_prefix}{quote(mapping.target)} ", 1)
        statements.append(create)
        created[mapping.target] = tuple(statements)
        if dry_run:
            continue
        try:
            for statement in statements:
                _LOG.info("creating on the target: %s", statement.split(" (")[0])
                target.execute(statement)
        except Exception as error:  # noqa: BLE001 - named to the user
            problems.append(f"TABLES[{index}]: could not create {settings.target_label(mapping)}"
                            f": {type(error).__name__}: {error}")
    if not dry_run:
        target.cluster.refresh_schema_metadata()
    return problems


def _case_hint(keyspace, name: str) -> str:
    """A table of the keyspace whose name differs from ``name`` only in case: unquoted names
    are read in lower case, as CQL reads them."""
    found = [table for table in keyspace.tables if table.lower() == name.lower() != table]
    return (f" (there is a table {found[0]!r}: a name that keeps upper case goes in double "
            f"quotes, '\"{found[0]}\"')") if found else ""


def _check_table(settings, index, mapping, source, source_keyspace, target_keyspace,
                 problems) -> TablePlan | None:
    where = f"TABLES[{index}]"
    source_label, target_label = settings.source_label(mapping), settings.target_label(mapping)
    source_table = source_keyspace.tables.get(mapping.source)
    target_table = target_keyspace.tables.get(mapping.target)
    if source_table is None:
        problems.append(f"{where}.SOURCE: table {source_label} does not exist"
                        + _case_hint(source_keyspace, mapping.source))
    if target_table is None:
        problems.append(f"{where}.TARGET: table {target_label} does not exist"
                        + (_case_hint(target_keyspace, mapping.target)
                           or ("" if settings.create_target_tables else
                               " (CREATE_TARGET_TABLES: true creates it from the source)")))
    if source_table is None or target_table is None:
        return None
    before = len(problems)
    renames = mapping.renames()
    for name in renames:
        if name not in source_table.columns:
            problems.append(f"{where}.COLUMNS: {source_label} has no column {name}")

    sources_of: dict[str, list[str]] = {}
    for name in source_table.columns:
        if renames.get(name, name) is not None:
            sources_of.setdefault(renames.get(name, name), []).append(name)
    for target_name, names in sources_of.items():
        if len(names) > 1:
            kept = [name for name in names if name not in renames]
            hint = f" (rename or skip {' and '.join(kept)} too)" if kept else ""
            problems.append(f"{where}.COLUMNS: {' and '.join(names)} of {source_label} would "
                            f"{'both' if len(names) == 2 else 'all'} be written to "
                            f"{target_name} of {target_label}{hint}")

    def renamed(columns):
        return [(renames.get(column.name, column.name), _normalise(column.cql_type))
                for column in columns]

    for part, source_key, target_key in (
            ("partition key", source_table.partition_key, target_table.partition_key),
            ("clustering key", source_table.clustering_key, target_table.clustering_key)):
        if renamed(source_key) != _key_signature(target_key):
            problems.append(
                f"{where}: the {part} of {target_label} "
                f"({', '.join(f'{n} {t}' for n, t in _key_signature(target_key)) or 'none'}) "
                f"differs from that of {source_label} "
                f"({', '.join(f'{n} {t}' for n, t in renamed(source_key)) or 'none'})")
    missing, mismatched = [], []
    for name, column in source_table.columns.items():
        target_name = renames.get(name, name)
        if target_name is None:
            continue  # skipped
        target_column = target_table.columns.get(target_name)
        if target_column is None:
            missing.append(target_name)
        elif _normalise(target_column.cql_type) != _normalise(column.cql_type):
            mismatched.append(f"{name} is {column.cql_type} in {source_label} but "
                              f"{target_name} is {target_column.cql_type} in {target_label}")
        elif column.is_static != target_column.is_static:
            # A static holds one value per partition, a regular column one per row: mapped
            # onto each other, the rows' values would collapse into one (or one be repeated).
            kinds = ("static", "regular") if column.is_static else ("regular", "static")
            mismatched.append(f"{name} is {kinds[0]} in {source_label} but {target_name} is "
                              f"{kinds[1]} in {target_label}")
    if missing:
        problems.append(f"{where}: {target_label} has no column {', '.join(missing)} "
                        f"(present in {source_label})")
    problems.extend(f"{where}: column {text}" for text in mismatched)
    problems.extend(_user_type_problems(settings, where, source_label, source_table, renames,
                                        source_keyspace, target_keyspace))
    key_names = {column.name for column in (*source_table.partition_key,
                                            *source_table.clustering_key)}
    for name in key_names:
        if name in renames and renames[name] is None:
            problems.append(f"{where}.COLUMNS: primary key column {name} cannot be skipped")
    for name, value in mapping.constants:
        if name not in target_table.columns:
            problems.append(f"{where}.CONSTANTS: {target_label} has no column {name}")
        elif not _accepts(target_table.columns[name].cql_type, value):
            problems.append(f"{where}.CONSTANTS: {value!r} is not a valid "
                            f"{target_table.columns[name].cql_type} for {target_label}.{name}")
    counters = [name for name, column in source_table.columns.items()
                if column.cql_type == "counter"]
    if counters and (mapping.where or mapping.constants or mapping.writetime_from
                     or mapping.writetime_to):
        problems.append(f"{where}: {source_label} is a counter table: WHERE, CONSTANTS and "
                        "writetime windows do not apply to counters")
    partitions = None
    if mapping.partitions is not None:
        partitions = _partition_keys(where, mapping.partitions, source_table.partition_key,
                                     source_label, problems)
    if mapping.where:
        problems.extend(_check_where(source, settings.source.keyspace, mapping, where,
                                     [column.name for column in source_table.partition_key],
                                     partitions is not None))
    if len(problems) > before:
        return None
    estimated_partitions, estimated_bytes = _size_estimate(source, settings.source.keyspace,
                                                           mapping.source)
    per_partition = (_rows_per_partition(source, settings.source.keyspace, source_table)
                     if estimated_partitions else None)
    multi_cell = tuple(name for name, column in _copied_columns(mapping, source_table)
                       if cells.is_multi_cell(column.cql_type, set(source_keyspace.user_types)))
    return TablePlan(mapping, source_label, target_label, tuple(source_table.columns),
                     estimated_partitions, counters=bool(counters), partitions=partitions,
                     multi_cell=multi_cell,
                     estimated_bytes=estimated_bytes,
                     estimated_rows=(round(estimated_partitions * per_partition)
                                     if per_partition else None))


def _partition_value(cql_type: str, value):
    """YAML cannot write a UUID: for a uuid or timeuuid column, a string that parses as one
    (a version 1 one for timeuuid) becomes a ``uuid.UUID``; anything else is left as it is."""
    if _normalise(cql_type) not in ("uuid", "timeuuid") or not isinstance(value, str):
        return value
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return value
    return value if cql_type == "timeuuid" and parsed.version != 1 else parsed


def _partition_keys(where, keys, key_columns, source_label, problems) -> tuple[tuple, ...]:
    """PARTITIONS as the driver binds them, each value checked against its column's type."""
    converted = []
    for key in keys:
        if len(key) != len(key_columns):
            problems.append(f"{where}.PARTITIONS: {list(key)} has {len(key)} values but the "
                            f"partition key of {source_label} has {len(key_columns)}")
            continue
        values = tuple(_partition_value(column.cql_type, value)
                       for value, column in zip(key, key_columns, strict=True))
        for original, value, column in zip(key, values, key_columns, strict=True):
            if not _accepts(column.cql_type, value):
                problems.append(f"{where}.PARTITIONS: {original!r} is not a valid "
                                f"{column.cql_type} for partition key column {column.name} "
                                f"of {source_label}")
        converted.append(values)
    return unique_partitions(converted)  # two spellings of one UUID are one partition


_TYPE_NAME = re.compile(r'"((?:[^"]|"")*)"|(\w+)')


def _user_types_in(cql_type: str, user_types, found: list[str]) -> list[str]:
    """The user types a CQL type uses, also inside collections, tuples and other user types."""
    for quoted, plain in _TYPE_NAME.findall(cql_type):
        name = quoted.replace('""', '"') if quoted else plain
        if name in user_types and name not in found:
            found.append(name)
            for field_type in user_types[name].field_types:
                _user_types_in(field_type, user_types, found)
    return found


def _user_type_problems(settings, where, source_label, source_table, renames, source_keyspace,
                        target_keyspace) -> list[str]:
    """Cassandra finds a column's user type by name in its own keyspace, and the copy sends
    fields by position: a target type of the same name with other fields would take values
    into the wrong fields, silently. So fields must match in name, type and order."""
    columns_of: dict[str, list[str]] = {}
    for name, column in source_table.columns.items():
        if renames.get(name, name) is None:
            continue  # skipped
        for type_name in _user_types_in(column.cql_type, source_keyspace.user_types, []):
            columns_of.setdefault(type_name, []).append(name)
    problems = []
    for type_name, columns in columns_of.items():
        source_label_of_type = f"{quote(settings.source.keyspace)}.{quote(type_name)}"
        target_label_of_type = f"{quote(settings.target.keyspace)}.{quote(type_name)}"
        used_by = (f"column {columns[0]} of {source_label} uses" if len(columns) == 1 else
                   f"columns {', '.join(sorted(columns))} of {source_label} use")
        target_type = target_keyspace.user_types.get(type_name)
        if target_type is None:
            problems.append(f"{where}: {used_by} user type {type_name}, which "
                            f"{target_label_of_type} does not define")
            continue
        source_fields = _fields(source_keyspace.user_types[type_name])
        target_fields = _fields(target_type)
        differences = [
            f"field {position} is {mine or 'absent'} in {source_label_of_type} but "
            f"{theirs or 'absent'} in {target_label_of_type}"
            for position, (mine, theirs) in enumerate(
                itertools.zip_longest(source_fields, target_fields), start=1)
            if mine != theirs]
        if differences:
            problems.append(f"{where}: {used_by} user type {type_name}, whose fields differ on "
                            f"the target: {'; '.join(differences)}")
    return problems


def _fields(user_type) -> list[str]:
    return [f"{name} {_normalise(cql_type)}"
            for name, cql_type in zip(user_type.field_names, user_type.field_types, strict=True)]


_SIMPLE_TYPES = {cls.typename: cls for cls in _casstypes.values()
                 if isinstance(getattr(cls, "typename", None), str)}


def _accepts(cql_type: str, value) -> bool:
    """Whether the driver can serialize ``value`` as the simple type ``cql_type``. Collections,
    tuples and user types are not checked here: a bad value fails each row's write."""
    driver_type = _SIMPLE_TYPES.get(_normalise(cql_type))
    if driver_type is None:
        return True
    try:
        driver_type.serialize(value, 5)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not accepted"
        return False



def _check_where(source, keyspace, mapping, where, partition_key: list[str],
                 by_partition: bool) -> list[str]:
    """Let the source cluster parse the WHERE condition in the query the readers will send
    (nothing is read): within a token range, or within one listed partition (PARTITIONS).

    A condition on the partition key passes Cassandra's parsing beside a token range, then
    fails the reads ("cannot be restricted by more than one relation if it includes an
    Equal"): it is refused here, with the way out (PARTITIONS)."""
    named = _columns_named(mapping.where, partition_key)
    if named and not by_partition:
        return [f"{where}.WHERE: {mapping.where!r} restricts the partition key "
                f"({', '.join(named)}), which a read by token range cannot also restrict; "
                f"name those partitions in {where}.PARTITIONS instead (e.g. PARTITIONS: "
                "[['eu'], ['us']]), and keep in WHERE the conditions on other columns"]
    table = f"{quote(keyspace)}.{quote(mapping.source)}"
    if by_partition:
        within = " AND ".join(f"{quote(name)} = ?" for name in partition_key)
    else:
        token = f"token({', '.join(map(quote, partition_key))})"
        within = f"{token} > ? AND {token} <= ?"
    try:
        source.prepare(f"SELECT * FROM {table} WHERE {within} AND {mapping.where} "
                       "ALLOW FILTERING")
    except Exception as error:  # noqa: BLE001 - named to the user
        return [f"{where}.WHERE: the source rejects {mapping.where!r}: {error}"]
    return []


# A CQL string literal, a quoted identifier, or a word (an unquoted identifier or keyword).
_CQL_TOKEN = re.compile(r"'(?:[^']|'')*'|\$\$.*?\$\$|\"((?:[^\"]|\"\")*)\"|([A-Za-z_]\w*)",
                        re.DOTALL)


def _columns_named(condition: str, columns: list[str]) -> list[str]:
    """The ``columns`` that a CQL condition names (outside string literals; an unquoted name
    as CQL folds it, to lower case)."""
    named, previous = set(), ""
    for match in _CQL_TOKEN.finditer(condition):
        quoted, word = match.group(1), match.group(2)
        if quoted is not None:
            named.add(quoted.replace('""', '"'))
        elif word is not None and not (word.lower() == "key" and previous == "contains"):
            named.add(word.lower())  # (CONTAINS KEY is an operator, not the column "key")
        previous = word.lower() if word is not None else ""
    return [name for name in columns if name in named]
