"""Settings of a migration: migrator_settings.yaml loaded once into typed, frozen objects.

Precedence, lowest first: the defaults below, the YAML file, then ``--set KEY=VALUE`` overrides
from the command line (``SOURCE.HOSTS=[10.0.0.1]`` reaches into a section). Every problem is
reported with the file and the key (``TABLES[2].TARGET: ...``), all of them at once, before
anything connects or writes. Only the CLI layer turns a ``SettingsError`` into an exit code.

Secrets: PASSWORD_ENV names an environment variable and PASSWORD_FILE a file that hold the
password; a PASSWORD written in the file itself works too, but is never printed or logged. A
password is refused from ``--set``: the command line is visible to every user of the machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from cassandra import ConsistencyLevel

from transforms.connection import CassandraConnection, TlsOptions
from transforms.retry import RetryPolicy
from transforms.write import BatchMode


class SettingsError(Exception):
    """Settings that cannot be used; the message names the file, every bad key and the problem."""


ALL_TABLES = "*"


@dataclass(frozen=True)
class TableMapping:
    """One table to copy: source table -> target table, optionally only some partitions,
    with renamed, skipped or constant columns, and a filter on rows or on writetime."""

    source: str
    target: str
    partitions: tuple[tuple, ...] | None = None
    columns: tuple[tuple[str, str | None], ...] = ()  # (source column, target column or None)
    constants: tuple[tuple[str, Any], ...] = ()  # (target column, value)
    where: str | None = None
    writetime_from: int | None = None  # microseconds since the epoch, inclusive
    writetime_to: int | None = None  # exclusive

    def renames(self) -> dict[str, str | None]:
        return dict(self.columns)


@dataclass(frozen=True)
class ClusterSettings:
    connection: CassandraConnection
    keyspace: str
    # The launcher's own login (``LAUNCHER``), when the workers' password lives on the workers
    # only; None: the launcher logs in as the workers do.
    launcher_login: CassandraConnection | None = None

    @property
    def launcher_connection(self) -> CassandraConnection:
        """How the launcher connects for its checks and the ledger."""
        return self.launcher_login or self.connection


@dataclass(frozen=True)
class Settings:
    path: str
    source: ClusterSettings
    target: ClusterSettings
    tables: tuple[TableMapping, ...]
    max_workers: int = 5
    batch_insert_size: int = 50
    fetch_batch_size: int = 100
    fetch_page_bytes: int | None = 256 * 1024
    splits: int | None = None
    read_consistency: int = ConsistencyLevel.LOCAL_QUORUM
    write_consistency: int = ConsistencyLevel.QUORUM
    fallback_consistency: int | None = ConsistencyLevel.ONE
    retry_attempts: int = 3
    retry_backoff_seconds: float = 0.5
    retry_max_backoff_seconds: float = 30.0
    batch_mode: BatchMode = BatchMode.REPLICA_SET
    max_requests_in_flight: int = 64
    max_batch_bytes: int = 40 * 1024
    max_rows_per_second: float | None = None
    preserve_writetime: bool = True
    preserve_ttl: bool = True
    create_target_tables: bool = False
    log_file: str | None = "migrator.log"
    log_level: str = "INFO"
    summary_file: str | None = "migration_summary.json"
    failed_rows_dir: str = "failed_rows"
    ledger_keyspace: str | None = "migrator_ledger"
    outage_wait_seconds: float = 600.0
    max_failed_rows: int | str | None = 1000
    auto_correct: bool = False
    delete_extra_rows: bool = False
    sample_percent: float = 100.0
    validation_summary_file: str | None = "validation_summary.json"
    differences_dir: str = "differences"
    ttl_tolerance_seconds: int = 60

    def retry_policy(self, side: ClusterSettings, consistency: int) -> RetryPolicy:
        """How requests to one side are retried (``transforms.retry``)."""
        return RetryPolicy(retries=self.retry_attempts, consistency=consistency,
                           fallback_consistency=self.fallback_consistency,
                           initial_backoff=self.retry_backoff_seconds,
                           max_backoff=self.retry_max_backoff_seconds,
                           outage_wait=self.outage_wait_seconds,
                           cluster=side.connection.describe())

    def failure_budget(self) -> tuple[int | None, float | None]:
        """MAX_FAILED_ROWS as (rows, share of the rows read): one of them, or neither."""
        if isinstance(self.max_failed_rows, str):
            return None, float(self.max_failed_rows[:-1]) / 100
        return self.max_failed_rows, None

    def source_label(self, table: TableMapping) -> str:
        return f"{self.source.keyspace}.{table.source}"

    def target_label(self, table: TableMapping) -> str:
        return f"{self.target.keyspace}.{table.target}"


# --------------------------------------------------------------------------- value checks

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,48}$")
_QUOTED_NAME = re.compile(r'^"((?:[^"]|"")+)"$')
_CONSISTENCY_NAMES = sorted(ConsistencyLevel.name_to_value)
_WRITE_LEVELS = [name for name in _CONSISTENCY_NAMES if "SERIAL" not in name]
_READ_LEVELS = [name for name in _CONSISTENCY_NAMES if name not in ("ANY", "EACH_QUORUM")]
# The fallback level is used by reads and writes alike.
_FALLBACK_LEVELS = [name for name in _READ_LEVELS if name in _WRITE_LEVELS]


class _Problems:
    """Collects every problem of a settings file, each prefixed with the file and key."""

    def __init__(self, path: str):
        self.path = path
        self.messages: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.messages.append(f"{key}: {message}")

    def raise_if_any(self) -> None:
        if self.messages:
            raise SettingsError(f"{self.path}: invalid settings:\n  - "
                                + "\n  - ".join(self.messages))


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _integer(low: int, high: int) -> Callable[[Any], Any]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {_type_name(value)} {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")
        return value
    return check


def _number(low: float, high: float) -> Callable[[Any], Any]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, not {_type_name(value)} {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")
        return float(value)
    return check


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {_type_name(value)} {value!r}")
    return value


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_type_name(value)} {value!r}")
    return value


def _failure_budget(value):
    """A number of rows (0 or more), or a share of the rows read as "5%"."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1])
        except ValueError:
            share = -1.0
        if not 0 <= share <= 100:
            raise ValueError(f"must be a number of rows or a percentage like \"5%\", not "
                             f"{value!r}")
        return f"{share:g}%"
    return _integer(0, 10**12)(value)


def _optional(check):
    return lambda value: None if value is None else check(value)


def _choice(names: list[str]) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, str) or value.upper() not in names:
            raise ValueError(f"must be one of {', '.join(names)}, not {value!r}")
        return value.upper()
    return check


def _consistency(names: list[str]) -> Callable[[Any], Any]:
    choose = _choice(names)
    return lambda value: ConsistencyLevel.name_to_value[choose(value)]


def _identifier(value):
    """A keyspace or table name as CQL reads it: unquoted, in lower case (``Names`` is the
    table ``names``); in double quotes, exactly (``'"Names"'``)."""
    _text(value)
    name = _unquoted(value)
    name = value.lower() if name is None else name
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{value!r} is not a Cassandra table or keyspace name "
                         "(letters, digits and _, at most 48; in double quotes to keep "
                         "upper case: '\"Names\"')")
    return name


def column_name(value: str) -> str:
    """A column name: as the table lists it (``UserId`` and ``userid`` are two columns), or
    in double quotes as CQL writes it (``'"Key-Name"'``)."""
    name = _unquoted(value)
    return value if name is None else name


def _unquoted(value: str) -> str | None:
    """The name inside a double-quoted CQL identifier (``""`` is one quote), or None."""
    quoted = _QUOTED_NAME.match(value)
    return None if quoted is None else quoted.group(1).replace('""', '"')


def _hosts(value):
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of host names or addresses")
    hosts = tuple(_text(host).strip() for host in value)
    for host in hosts:
        # host:port, or [v6 address]:port; a bare IPv6 address has more than one colon.
        found = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+):(\d+)", host)
        if found:
            raise ValueError(f"{host!r} holds a port: write the host alone in HOSTS and the port "
                             f"in PORT (PORT: {found.group(2)}; every host of a cluster shares it)")
    return hosts


# Top-level keys: name -> (default, check). SOURCE, TARGET and TABLES are handled apart.
_GLOBAL_KEYS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "MAX_WORKERS": (5, _integer(1, 1024)),
    "BATCH_INSERT_SIZE": (50, _integer(1, 10_000)),
    "FETCH_BATCH_SIZE": (100, _integer(1, 100_000)),
    "FETCH_PAGE_BYTES": (256 * 1024, _optional(_integer(1024, 64 * 1024 * 1024))),
    "SPLITS": (None, _optional(_integer(1, 1_000_000))),
    "READ_CONSISTENCY": ("LOCAL_QUORUM", _consistency(_READ_LEVELS)),
    "WRITE_CONSISTENCY": ("QUORUM", _consistency(_WRITE_LEVELS)),
    "FALLBACK_CONSISTENCY": ("ONE", _optional(_consistency(_FALLBACK_LEVELS))),
    "RETRY_ATTEMPTS": (3, _integer(0, 100)),
    "RETRY_BACKOFF_SECONDS": (0.5, _number(0, 600)),
    "RETRY_MAX_BACKOFF_SECONDS": (30.0, _number(0, 3600)),
    "BATCH_MODE": ("REPLICA_SET", lambda v: BatchMode(_choice([m.value for m in BatchMode])(v))),
    "MAX_REQUESTS_IN_FLIGHT": (64, _integer(1, 4096)),
    "MAX_BATCH_BYTES": (40 * 1024, _integer(1024, 16 * 1024 * 1024)),
    "MAX_ROWS_PER_SECOND": (None, _optional(_number(1, 10_000_000))),
    "PRESERVE_WRITETIME": (True, _boolean),
    "PRESERVE_TTL": (True, _boolean),
    "CREATE_TARGET_TABLES": (False, _boolean),
    "LOG_FILE": ("migrator.log", _optional(_text)),
    "LOG_LEVEL": ("INFO", _choice(["DEBUG", "INFO", "WARNING", "ERROR"])),
    "SUMMARY_FILE": ("migration_summary.json", _optional(_text)),
    "FAILED_ROWS_DIR": ("failed_rows", _text),
    "LEDGER_KEYSPACE": ("migrator_ledger", _optional(_identifier)),
    "OUTAGE_WAIT_SECONDS": (600.0, _number(0, 7 * 24 * 3600)),
    "MAX_FAILED_ROWS": (1000, _optional(lambda value: _failure_budget(value))),
    # Validation (``cassandra-migrate validate``)
    "AUTO_CORRECT": (False, _boolean),
    "DELETE_EXTRA_ROWS": (False, _boolean),
    "SAMPLE_PERCENT": (100.0, _number(0.001, 100)),
    "VALIDATION_SUMMARY_FILE": ("validation_summary.json", _optional(_text)),
    "DIFFERENCES_DIR": ("differences", _text),
    "TTL_TOLERANCE_SECONDS": (60, _integer(0, 10 * 365 * 24 * 3600)),
}

_CLUSTER_KEYS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "HOSTS": (None, _hosts),
    "PORT": (9042, _integer(1, 65535)),
    "KEYSPACE": (None, _identifier),
    "LOCAL_DC": (None, _optional(_text)),
    "USERNAME": (None, _optional(_text)),
    "PASSWORD": (None, _optional(_text)),
    "PASSWORD_ENV": (None, _optional(_text)),
    "PASSWORD_FILE": (None, _optional(_text)),
    "SSL": (None, None),
    "LAUNCHER": (None, None),
    "PROTOCOL_VERSION": (None, _optional(_integer(3, 6))),
    "CONNECT_TIMEOUT_SECONDS": (10.0, _number(0.1, 600)),
    "REQUEST_TIMEOUT_SECONDS": (30.0, _number(0.1, 3600)),
}
_REQUIRED_CLUSTER_KEYS = ("HOSTS", "KEYSPACE")

# The launcher's own login: the workers' PASSWORD_ENV / PASSWORD_FILE are then read on the
# workers only.
_LAUNCHER_KEYS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "USERNAME": (None, _text),
    "PASSWORD_ENV": (None, _optional(_text)),
    "PASSWORD_FILE": (None, _optional(_text)),
}

_SSL_KEYS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "ENABLED": (False, _boolean),
    "CA_CERTS": (None, _optional(_text)),
    "CERTFILE": (None, _optional(_text)),
    "KEYFILE": (None, _optional(_text)),
    "CHECK_HOSTNAME": (True, _boolean),
}


def suggestions(word: str, known: list[str], most: int = 3) -> list[str]:
    """The known names closest to a mistyped one (case and underscores aside), at most
    ``most``: ``MAX_WORKER`` gives ``MAX_WORKERS``."""
    def plain(name: str) -> str:
        return name.upper().replace("_", "").replace("-", "")

    exact = [name for name in known if plain(name) == plain(word)]
    if exact:
        return exact[:most]
    by_plain = {plain(name): name for name in known}
    return [by_plain[name] for name in difflib.get_close_matches(
        plain(word), list(by_plain), n=most, cutoff=0.75)]


def _unknown(close: list[str], known: tuple[str, ...] = ()) -> str:
    if close:
        return f"unknown setting (did you mean {' or '.join(close)}?)"
    if known:  # a short list: named whole
        return f"unknown setting; known: {', '.join(known)}"
    return "unknown setting (the settings reference in README.md, section 'Settings', lists them)"


def _section(problems: _Problems, where: str, raw: Mapping, keys: dict,
             also_known: tuple[str, ...] = ()) -> dict:
    """Check a mapping against its known keys; return key -> checked value (defaults filled)."""
    values = {}
    for key in raw:
        if key not in keys:
            close = suggestions(str(key), [*also_known, *keys])
            problems.add(f"{where}{key}", _unknown(close))
    for key, (default, check) in keys.items():
        value = raw.get(key, default)
        if check is None:
            values[key] = value
            continue
        try:
            values[key] = check(value)
        except ValueError as error:
            problems.add(f"{where}{key}", str(error))
    return values


def _file_readable(problems: _Problems, key: str, path: str | None) -> None:
    """Local files must exist now; remote ones (gs://...) are read where they are needed."""
    if path is not None and "://" not in path and not os.path.isfile(path):
        problems.add(key, f"file {path} does not exist")


def _cluster(problems: _Problems, name: str, raw: Any) -> ClusterSettings | None:
    if not isinstance(raw, Mapping):
        problems.add(name, f"must be a mapping with HOSTS and KEYSPACE, not {_type_name(raw)}")
        return None
    for key in _REQUIRED_CLUSTER_KEYS:
        if raw.get(key) is None:
            problems.add(f"{name}.{key}", "is required")
    before = len(problems.messages)
    values = _section(problems, f"{name}.", raw, _CLUSTER_KEYS)
    tls = None
    ssl_raw = values["SSL"]
    if ssl_raw is not None:
        if not isinstance(ssl_raw, Mapping):
            problems.add(f"{name}.SSL", f"must be a mapping, not {_type_name(ssl_raw)}")
        else:
            ssl_values = _section(problems, f"{name}.SSL.", ssl_raw, _SSL_KEYS)
            for key in ("CA_CERTS", "CERTFILE", "KEYFILE"):
                _file_readable(problems, f"{name}.SSL.{key}", ssl_values.get(key))
            if ssl_values.get("ENABLED"):
                tls = TlsOptions(ca_certs=ssl_values["CA_CERTS"], certfile=ssl_values["CERTFILE"],
                                 keyfile=ssl_values["KEYFILE"],
                                 check_hostname=ssl_values["CHECK_HOSTNAME"])
    secrets = [key for key in ("PASSWORD", "PASSWORD_ENV", "PASSWORD_FILE") if values.get(key)]
    if len(secrets) > 1:
        problems.add(f"{name}", f"give only one of {', '.join(secrets)}")
    if secrets and not values.get("USERNAME"):
        problems.add(f"{name}.USERNAME", f"is required with {secrets[0]}")
    launcher = _launcher_login(problems, name, values["LAUNCHER"])
    if launcher is None:  # the launcher reads the workers' secret too: it must be here
        if values.get("PASSWORD_ENV") and values["PASSWORD_ENV"] not in os.environ:
            problems.add(f"{name}.PASSWORD_ENV",
                         f"environment variable {values['PASSWORD_ENV']} is not set")
        _file_readable(problems, f"{name}.PASSWORD_FILE", values.get("PASSWORD_FILE"))
    if len(problems.messages) > before:
        return None
    connection = CassandraConnection(
        hosts=values["HOSTS"], port=values["PORT"], local_dc=values["LOCAL_DC"],
        username=values["USERNAME"], password=values["PASSWORD"],
        password_env=values["PASSWORD_ENV"], password_file=values["PASSWORD_FILE"], tls=tls,
        protocol_version=values["PROTOCOL_VERSION"],
        connect_timeout=values["CONNECT_TIMEOUT_SECONDS"],
        request_timeout=values["REQUEST_TIMEOUT_SECONDS"])
    if launcher is not None:
        launcher = dataclasses.replace(connection, password=None, **launcher)
    return ClusterSettings(connection, values["KEYSPACE"], launcher)


def _launcher_login(problems: _Problems, name: str, raw: Any) -> dict | None:
    """``{name}.LAUNCHER``: the login the launcher uses instead of the workers' (USERNAME and
    PASSWORD_ENV or PASSWORD_FILE, read here); None when not given or wrong."""
    if raw is None:
        return None
    where = f"{name}.LAUNCHER"
    if not isinstance(raw, Mapping):
        problems.add(where, f"must be a mapping with USERNAME and PASSWORD_ENV or "
                            f"PASSWORD_FILE, not {_type_name(raw)}")
        return None
    if raw.get("USERNAME") is None:
        problems.add(f"{where}.USERNAME", "is required")
    values = _section(problems, f"{where}.", raw, _LAUNCHER_KEYS)
    secrets = [key for key in ("PASSWORD_ENV", "PASSWORD_FILE") if values.get(key)]
    if len(secrets) != 1:
        problems.add(where, "give one of PASSWORD_ENV, PASSWORD_FILE (a password in the "
                            "settings file is not accepted here)")
    if values.get("PASSWORD_ENV") and values["PASSWORD_ENV"] not in os.environ:
        problems.add(f"{where}.PASSWORD_ENV",
                     f"environment variable {values['PASSWORD_ENV']} is not set")
    _file_readable(problems, f"{where}.PASSWORD_FILE", values.get("PASSWORD_FILE"))
    return {"username": values.get("USERNAME"), "password_env": values.get("PASSWORD_ENV"),
            "password_file": values.get("PASSWORD_FILE")}


def _writetime(value) -> int:
    """Microseconds since the epoch, from a whole number or an ISO-8601 date and time."""
    if isinstance(value, bool):
        raise ValueError(f"must be a timestamp, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (str, datetime.date)):
        try:
            moment = (value if isinstance(value, datetime.datetime)
                      else datetime.datetime.fromisoformat(str(value)))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date and time (2024-05-01T00:00:00Z)"
                             " nor microseconds since the epoch") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp() * 1_000_000)
    raise ValueError(f"must be a timestamp, not {_type_name(value)} {value!r}")


# Quoted text: 'strings' ('' escapes a quote), "identifiers" ("" escapes one) and $$strings$$;
# an unterminated one runs to the end (the source cluster then rejects the condition).
_QUOTED = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|\$\$.*?(?:\$\$|$)", re.DOTALL)
# What a SELECT may carry after its WHERE clause, and what ends or hides the rest of it.
_NOT_A_CONDITION = re.compile(
    r"\b(?:PER\s+PARTITION\s+LIMIT|LIMIT|ORDER\s+BY|GROUP\s+BY|ALLOW\s+FILTERING)\b"
    r"|;|--|//|/\*", re.IGNORECASE)


def _condition(value) -> str:
    """A WHERE condition only: the read appends it to each token range's restriction, so a
    LIMIT would silently cut every range short and ORDER BY, a ';' or a comment would change
    the statement."""
    _text(value)
    unquoted = _QUOTED.sub(lambda match: " " * len(match.group()), value)
    found = []
    for match in _NOT_A_CONDITION.finditer(unquoted):
        words = " ".join(match.group().upper().split())
        if words not in found:
            found.append(words)
    if found:
        raise ValueError(f"must be a condition only (such as region = 'eu'), without "
                         f"{', '.join(found)}")
    return value


_TABLE_KEYS = ("SOURCE", "TARGET", "PARTITIONS", "COLUMNS", "CONSTANTS", "WHERE",
               "WRITETIME_FROM", "WRITETIME_TO")


def _table_options(problems: _Problems, where: str, item: Mapping) -> dict:
    options = {}
    columns = item.get("COLUMNS")
    if columns is not None:
        if not isinstance(columns, Mapping) or not all(
                isinstance(name, str) and (target is None or isinstance(target, str))
                for name, target in columns.items()):
            problems.add(f"{where}.COLUMNS", "must map source column names to target column "
                                             "names (or to null to skip a column)")
        else:
            columns = {column_name(name): None if target is None else column_name(target)
                       for name, target in columns.items()}
            options["columns"] = tuple(columns.items())
            sources_of: dict[str, list[str]] = {}
            for name, target in columns.items():
                if target is not None:
                    sources_of.setdefault(target, []).append(name)
            for target, names in sources_of.items():
                if len(names) > 1:
                    problems.add(f"{where}.COLUMNS", f"{' and '.join(names)} are "
                                                     f"{'both' if len(names) == 2 else 'all'} "
                                                     f"renamed to {target}")
    constants = item.get("CONSTANTS")
    if constants is not None:
        if not isinstance(constants, Mapping) or not all(isinstance(k, str) for k in constants):
            problems.add(f"{where}.CONSTANTS", "must map target column names to values")
        else:
            options["constants"] = tuple((column_name(name), value)
                                         for name, value in constants.items())
    if item.get("WHERE") is not None:
        try:
            options["where"] = _condition(item["WHERE"])
        except ValueError as error:
            problems.add(f"{where}.WHERE", str(error))
    for key in ("WRITETIME_FROM", "WRITETIME_TO"):
        if item.get(key) is not None:
            try:
                options[key.lower()] = _writetime(item[key])
            except ValueError as error:
                problems.add(f"{where}.{key}", str(error))
    if options.get("writetime_from", 0) > options.get("writetime_to", float("inf")):
        problems.add(f"{where}.WRITETIME_TO", "must not be before WRITETIME_FROM")
    return options


def _comparable(value: Any) -> Any:
    """A hashable stand-in for a YAML value: equal values, and only those, get equal ones."""
    if isinstance(value, (list, tuple)):
        return ("list", tuple(map(_comparable, value)))
    if isinstance(value, Mapping):
        return ("map", frozenset((_comparable(k), _comparable(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def unique_partitions(keys) -> tuple[tuple, ...]:
    """Partition keys without repeats, first seen first: a partition listed twice would be read
    twice, and two readers of one counter partition could both add the same delta."""
    seen, unique = set(), []
    for key in keys:
        marker = _comparable(key)
        if marker not in seen:
            seen.add(marker)
            unique.append(key)
    return tuple(unique)


def _tables(problems: _Problems, raw: Any) -> tuple[TableMapping, ...]:
    if raw == ALL_TABLES:
        return (TableMapping(ALL_TABLES, ALL_TABLES),)
    if not isinstance(raw, list) or not raw:
        problems.add("TABLES", "must be a non-empty list of table names or mappings "
                               "with SOURCE and TARGET, or \"*\" for every table")
        return ()
    tables = []
    for index, item in enumerate(raw):
        where = f"TABLES[{index}]"
        if item == ALL_TABLES:
            tables.append(TableMapping(ALL_TABLES, ALL_TABLES))
            continue
        if isinstance(item, str):
            try:
                name = _identifier(item)
                tables.append(TableMapping(name, name))
            except ValueError as error:
                problems.add(where, str(error))
            continue
        if not isinstance(item, Mapping):
            problems.add(where, f"must be a table name or a mapping, not {_type_name(item)}")
            continue
        for key in item:
            if key not in _TABLE_KEYS:
                problems.add(f"{where}.{key}", _unknown(suggestions(str(key), list(_TABLE_KEYS)),
                                                         _TABLE_KEYS))
        names = {}
        for key in ("SOURCE", "TARGET"):
            value = item.get(key, item.get("SOURCE") if key == "TARGET" else None)
            try:
                names[key] = _identifier(value)
            except ValueError as error:
                problems.add(f"{where}.{key}", "is required" if value is None else str(error))
        partitions = item.get("PARTITIONS")
        if partitions is not None:
            if not isinstance(partitions, list) or not partitions:
                problems.add(f"{where}.PARTITIONS", "must be a non-empty list of partition keys "
                                                    "(a value, or a list for a composite key)")
                partitions = None
            else:
                partitions = unique_partitions(tuple(key) if isinstance(key, list) else (key,)
                                               for key in partitions)
        options = _table_options(problems, where, item)
        if len(names) == 2:
            tables.append(TableMapping(names["SOURCE"], names["TARGET"], partitions, **options))
    targets = [table.target for table in tables]
    for target in sorted({name for name in targets if targets.count(name) > 1}):
        problems.add("TABLES", f"target table {target} appears more than once")
    return tuple(tables)


def _holds_password(key: str, value: Any) -> bool:
    if key.strip().upper() == "PASSWORD":
        return True
    return isinstance(value, Mapping) and any(_holds_password(str(inner), inner_value)
                                              for inner, inner_value in value.items())


def _apply_override(document: dict, assignment: str, problems: _Problems) -> None:
    key, separator, text = assignment.partition("=")
    if not separator or not key:
        problems.add("--set", f"expected KEY=VALUE, got {assignment!r}")
        return
    *parents, leaf = key.strip().split(".")
    password_refused = (
        "a password on the command line is visible to every user of the machine and travels "
        "in the pipeline options; use PASSWORD_ENV (an environment variable) or PASSWORD_FILE "
        "(a file) instead")
    if leaf.strip().upper() == "PASSWORD":
        problems.add(f"--set {key.strip()}", password_refused)
        return
    try:
        # "*" alone is YAML's alias sign, and what TABLES=* (--tables '*') means: every table.
        value = ALL_TABLES if text.strip() == ALL_TABLES else (
            yaml.safe_load(text) if text else None)
    except yaml.YAMLError as error:
        # YAML's message quotes the text, which may hold a password.
        if "PASSWORD" in text.upper():
            problems.add(f"--set {key.strip()}", password_refused)
        else:
            problems.add(f"--set {key}", f"value is not valid YAML: {error}")
        return
    if _holds_password(leaf, value):
        problems.add(f"--set {key.strip()}", password_refused)
        return
    target = document
    for parent in parents:
        target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            problems.add(f"--set {key}", f"{parent} is not a section")
            return
    target[leaf] = value


def read_text(path: str) -> str:
    """A local file, or any path a Beam file system knows (gs://, s3://, ...)."""
    if "://" not in path:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def command_line_settings() -> list[tuple[str, str, str]]:
    """(option, settings key, help) of every setting that the command line and template
    parameters can set one by one: ``--max_workers=8`` is ``--set MAX_WORKERS=8``. Passwords
    are left out on purpose: they come from PASSWORD_ENV or PASSWORD_FILE, never from an
    option that a runner would log."""
    options = [("tables", "TABLES", 'Tables to copy: "*" or a YAML list, e.g. [orders, users]')]
    for key in _GLOBAL_KEYS:
        options.append((key.lower(), key, f"Overrides {key} of the settings file"))
    for side in ("SOURCE", "TARGET"):
        for key in _CLUSTER_KEYS:
            if key in ("PASSWORD", "SSL", "LAUNCHER"):
                continue
            options.append((f"{side}_{key}".lower(), f"{side}.{key}",
                            f"Overrides {side}.{key} of the settings file"))
        for key in _SSL_KEYS:
            options.append((f"{side}_ssl_{key}".lower(), f"{side}.SSL.{key}",
                            f"Overrides {side}.SSL.{key} of the settings file"))
    return options


def setting_default(key: str) -> Any:
    """The default of a settings key as the settings file writes it (``MAX_WORKERS``,
    ``TARGET.PORT``, ``SOURCE.SSL.ENABLED``); ``"required"`` for a key without one."""
    *sections, leaf = key.split(".")
    keys = (_SSL_KEYS if "SSL" in sections else _CLUSTER_KEYS if sections else _GLOBAL_KEYS)
    if leaf not in keys or (sections and leaf in _REQUIRED_CLUSTER_KEYS):
        return "required"
    return keys[leaf][0]


def load_settings(path: str, overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Read, check and type the settings; raise SettingsError naming every problem."""
    problems = _Problems(path)
    try:
        document = yaml.safe_load(read_text(path))
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except (OSError, BeamIOError, ValueError) as error:
        raise SettingsError(f"{path}: cannot read settings file: {error}") from None
    except yaml.YAMLError as error:
        # PyYAML names a string it was given "<unicode string>": the file is what was read.
        text = str(error).replace('"<unicode string>"', path).replace("<unicode string>", path)
        raise SettingsError(f"{path}: not valid YAML: {text}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: must be a mapping of settings, not {_type_name(document)}")
    for assignment in overrides:
        _apply_override(document, assignment, problems)
    for key in ("SOURCE", "TARGET", "TABLES"):
        if key not in document:
            problems.add(key, "is required")
    sections = ("SOURCE", "TARGET", "TABLES")
    values = _section(problems, "", {k: v for k, v in document.items() if k not in sections},
                      _GLOBAL_KEYS, also_known=sections)
    source = _cluster(problems, "SOURCE", document.get("SOURCE")) if "SOURCE" in document else None
    target = _cluster(problems, "TARGET", document.get("TARGET")) if "TARGET" in document else None
    tables = _tables(problems, document.get("TABLES")) if "TABLES" in document else ()
    if values.get("RETRY_MAX_BACKOFF_SECONDS", 30) < values.get("RETRY_BACKOFF_SECONDS", 0):
        problems.add("RETRY_MAX_BACKOFF_SECONDS", "must not be less than RETRY_BACKOFF_SECONDS")
    if (source and target and source.connection.hosts == target.connection.hosts
            and source.connection.port == target.connection.port
            and source.keyspace == target.keyspace
            and any(table.source == table.target for table in tables)):
        problems.add("TABLES", "a table would be copied onto itself (same cluster, keyspace "
                               "and table name)")
    problems.raise_if_any()
    return Settings(
        path=path, source=source, target=target, tables=tables,
        **{key.lower(): value for key, value in values.items()})
