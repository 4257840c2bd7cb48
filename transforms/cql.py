"""CQL text for the statements the transforms prepare. Identifiers are always quoted; values are
always bound (prepared statements), never formatted into CQL, except in ``literal_insert``,
which renders a failed row as a CQL statement for a person to replay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cassandra.encoder import Encoder
from cassandra.metadata import protect_name

_ENCODER = Encoder()


def quote(name: str) -> str:
    """``name`` as a CQL identifier, quoted when it needs to be (mixed case, reserved words)."""
    return protect_name(name)


def table_name(keyspace: str, table: str) -> str:
    return f"{quote(keyspace)}.{quote(table)}"


def select_statement(keyspace: str, table: str, columns: Iterable[str], where: str) -> str:
    return (f"SELECT {', '.join(map(quote, columns))} FROM {table_name(keyspace, table)} "
            f"WHERE {where}")


def insert_statement(keyspace: str, table: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    return (f"INSERT INTO {table_name(keyspace, table)} ({', '.join(map(quote, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)})")


def literal_insert(keyspace: str, table: str, row: Mapping) -> str:
    """An INSERT with the row's values as CQL literals (nulls left out, so no tombstones)."""
    present = {name: value for name, value in row.items() if value is not None}
    values = ", ".join(_ENCODER.cql_encode_all_types(value) for value in present.values())
    return (f"INSERT INTO {table_name(keyspace, table)} ({', '.join(map(quote, present))}) "
            f"VALUES ({values});")
