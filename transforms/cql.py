"""CQL text for the statements the transforms prepare. Identifiers are always quoted; values are
always bound (prepared statements), never formatted into CQL, except in ``literal_insert``,
which renders a failed row as a CQL statement for a person to replay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cassandra.metadata import protect_name

from transforms.values import LiteralEncoder

_ENCODER = LiteralEncoder()


def quote(name: str) -> str:
    """``name`` as a CQL identifier, quoted when it needs to be (mixed case, reserved words)."""
    return protect_name(name)


def table_name(keyspace: str, table: str) -> str:
    return f"{quote(keyspace)}.{quote(table)}"


def select_statement(keyspace: str, table: str, columns: Iterable[str], where: str, *,
                     quoted: bool = False) -> str:
    """SELECT of ``columns`` (names, or selectors already quoted when ``quoted``)."""
    selectors = list(columns) if quoted else [quote(name) for name in columns]
    return (f"SELECT {', '.join(selectors)} FROM {table_name(keyspace, table)} "
            f"WHERE {where}")


def using_clause(timestamp, ttl) -> str:
    """USING clause; ``timestamp`` and ``ttl`` are "?" placeholders or literal numbers."""
    parts = [f"TIMESTAMP {timestamp}" if timestamp is not None else "",
             f"TTL {ttl}" if ttl is not None else ""]
    parts = [part for part in parts if part]
    return f" USING {' AND '.join(parts)}" if parts else ""


def insert_statement(keyspace: str, table: str, columns: Iterable[str], *,
                     timestamp: bool = False, ttl: bool = False) -> str:
    """INSERT with a ``?`` per column, then ``?`` for the timestamp and TTL if asked."""
    columns = list(columns)
    return (f"INSERT INTO {table_name(keyspace, table)} ({', '.join(map(quote, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
            + using_clause("?" if timestamp else None, "?" if ttl else None))


def literal_insert(keyspace: str, table: str, row: Mapping, timestamp: int | None = None,
                   ttl: int | None = None) -> str:
    """An INSERT with the row's values as CQL literals (nulls left out, so no tombstones)."""
    present = {name: value for name, value in row.items() if value is not None}
    values = ", ".join(_ENCODER.cql_encode_all_types(value) for value in present.values())
    return (f"INSERT INTO {table_name(keyspace, table)} ({', '.join(map(quote, present))}) "
            f"VALUES ({values}){using_clause(timestamp, ttl)};")
