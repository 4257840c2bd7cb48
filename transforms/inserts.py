"""The INSERTs that write a row, and how rows share one request.

A row becomes one bound INSERT when its cells share one writetime and TTL (the usual case,
``cells.RowLayout``), or one INSERT per group of cells otherwise (``cells.cell_groups``). Values
are bound with ``binding.Binder``; nulls are UNSET, so a copy creates no tombstones. With TTLs
kept, on a target table with a ``default_time_to_live``, a cell without TTL is written ``USING
TTL 0``: without a TTL clause the table's default would apply, and the target would expire what
the source keeps (Cassandra's ``Attributes.getTimeToLive``: an explicit 0 overrides the
default). Several
rows' statements go in one UNLOGGED batch (``request_for``), cut so that no batch carries more
than a number of bytes of values (``within_bytes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from transforms.binding import Binder
from transforms.cells import CellOptions, RowLayout, cell_groups, is_metadata_key
from transforms.connection import table_metadata
from transforms.cql import insert_statement

__all__ = ["InsertStatements", "request_for", "within_bytes"]

_NO_TTL_BYTES = (0).to_bytes(4, "big")  # TTL 0 as the protocol carries an int


class InsertStatements:
    """Bound INSERTs for the rows of one table; prepared statements and row layouts cached."""

    def __init__(self, session, keyspace: str, table: str, key_columns: tuple[str, ...],
                 clustering_key: tuple[str, ...], cells: CellOptions, serialized: bool = False,
                 static: frozenset = frozenset()):
        self._session = session
        # Rows whose values are serialized already (bytes, None for null): bound as they are,
        # and decoded (for a dead letter) with the types of an INSERT of every column,
        # prepared now, while the table is known to be there.
        self._serialized = serialized
        self._bind = Binder.bind_serialized if serialized else Binder.bind
        self._keyspace = keyspace
        self._table = table
        self._key_columns = key_columns
        self._clustering_key = clustering_key
        self._cells = cells
        # Static columns: with writetimes or TTLs kept, a row with statics is written by groups
        # (``cells.cell_groups``), so that a static never gives its clustering row a marker.
        self._static = frozenset(static) if clustering_key else frozenset()
        self._partition_key = tuple(name for name in key_columns if name not in clustering_key)
        self._prepared: dict[tuple, Binder] = {}
        self._layouts: dict[tuple[str, ...], RowLayout] = {}
        self._types = {}
        metadata = table_metadata(session, keyspace, table)
        default_ttl = int(metadata.options.get("default_time_to_live") or 0) if metadata else 0
        # The TTL bound for a cell that has none when TTLs are kept: nothing (no TTL clause),
        # or 0 where the table's default would apply otherwise. Without kept TTLs the
        # target's default applies, as to any write that names no TTL.
        self._no_ttl = (None if not default_ttl or not cells.ttl
                        else _NO_TTL_BYTES if serialized else 0)
        if serialized:
            columns = tuple(metadata.columns)
            prepared = self._insert(columns, False, False).prepared
            self._types = {column.name: column.type for column in prepared.column_metadata}
            self._protocol_version = prepared.protocol_version

    def _insert(self, columns: tuple[str, ...], timestamp: bool, ttl: bool) -> Binder:
        key = (columns, timestamp, ttl)
        binder = self._prepared.get(key)
        if binder is None:
            binder = self._prepared[key] = Binder(self._session.prepare(insert_statement(
                self._keyspace, self._table, columns, timestamp=timestamp, ttl=ttl)))
        return binder

    def of(self, row: Mapping) -> list:
        """The bound INSERTs that write ``row`` (more than one when its cells differ in
        writetime or TTL). Raises when a value does not fit its column or a key is null."""
        if not self._cells.any:
            columns = tuple(row)
            if any(row.get(name) is None for name in self._clustering_key):
                # A partition with static cells only: no clustering key, so no row to insert.
                row = {name: value for name, value in row.items() if value is not None}
                columns = tuple(row)
            return [self._bind(self._insert(columns, False, False),
                               [UNSET_VALUE if value is None else value for value in row.values()])]
        keys = tuple(row)
        layout = self._layouts.get(keys)
        if layout is None:
            layout = self._layouts[keys] = RowLayout(keys, self._key_columns, self._cells)
        uniform = layout.uniform(row) if not self._static else None
        if uniform is not None:
            values, writetime, ttl = uniform
            if ttl is None:
                ttl = self._no_ttl
            values += [value for value in (writetime, ttl) if value is not None]
            return [self._bind(self._insert(layout.columns, writetime is not None,
                                            ttl is not None), values)]
        statements = []
        for cells, writetime, ttl in self._groups(row):
            if ttl is None:
                ttl = self._no_ttl
            values = list(cells.values())
            values += [value for value in (writetime, ttl) if value is not None]
            statements.append(self._bind(self._insert(tuple(cells), writetime is not None,
                                                      ttl is not None), values))
        return statements

    def readable(self, row: Mapping) -> Mapping:
        """``row`` with Python values (for a dead letter or a log line): serialized values
        decoded with the target's column types, writetimes and TTLs as integers."""
        if not self._serialized:
            return row
        types, version = self._types, self._protocol_version
        readable = {}
        for name, value in row.items():
            if value is None or value is UNSET_VALUE:
                readable[name] = None
            elif is_metadata_key(name):
                readable[name] = int.from_bytes(value, "big", signed=True)
            else:
                try:
                    readable[name] = types[name].from_binary(value, version)
                except Exception:  # noqa: BLE001 - a value Python cannot hold (a timestamp
                    readable[name] = value  # past year 9999): its bytes, base64 in JSON
        return readable

    def _groups(self, row: Mapping) -> list:
        return cell_groups(row, self._key_columns, self._cells, self._static,
                           self._partition_key)

    def groups(self, row: Mapping) -> list | None:
        """The row's cell groups when writetimes or TTLs are kept (for its dead letter, whose
        CQL must write what the INSERTs write: TTL 0 where they do)."""
        if not self._cells.any:
            return None
        groups = self._groups(row)
        if self._no_ttl is None:
            return groups
        return [(cells, writetime, 0 if ttl is None else ttl) for cells, writetime, ttl in groups]


def request_for(statements: list):
    """One request for some statements: a lone statement, or an UNLOGGED batch of them all."""
    if len(statements) == 1:
        return statements[0]
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for statement in statements:
        batch.add(statement)
    return batch


def within_bytes(members: Iterable[tuple[list, object]], max_bytes: int
                 ) -> Iterator[tuple[list[tuple[list, object]], int]]:
    """Cut (statements, anything) pairs into chunks whose statements carry at most
    ``max_bytes`` of values (a lone member over it is a chunk of its own): Cassandra refuses a
    multi-partition batch over batch_size_fail_threshold (50 KiB by default), and the fallback
    to single rows would cost far more than smaller batches. Yields (chunk, its bytes)."""
    chunk, size = [], 0
    for member in members:
        statements = member[0]
        row_size = sum(len(value) for statement in statements for value in statement.values
                       if isinstance(value, (bytes, bytearray)))
        if chunk and size + row_size > max_bytes:
            yield chunk, size
            chunk, size = [], 0
        chunk.append(member)
        size += row_size
    if chunk:
        yield chunk, size
