"""Binding rows to a prepared statement with less work per value than the driver's ``bind``.

The driver's ``PreparedStatement.bind`` is generic: for every value it builds a column
descriptor to consult a column encryption policy, and its timestamp serializer goes through
``calendar.timegm``. Measured on this project's rows (9 values), that is 9 µs a row, the largest
single cost of the writer (BENCHMARKS.md). ``Binder`` serializes with each column's own
serializer, looked up once, and a timestamp by integer arithmetic; it returns the driver's own
``BoundStatement``. Anything unusual (a column encryption policy, a value a serializer refuses,
an UNSET routing key column, the wrong number of values) goes through the driver's ``bind``, so
errors and their messages stay the driver's.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cassandra import cqltypes
from cassandra.cqltypes import EMPTY
from cassandra.marshal import int64_pack
from cassandra.query import UNSET_VALUE, BoundStatement

from transforms.values import Timestamp

__all__ = ["Binder"]

_EPOCH = datetime.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=datetime.timezone.utc)
_MILLISECOND = datetime.timedelta(milliseconds=1)
_NO_BYTES = b""  # an empty value (the driver's EMPTY): a value of no bytes, not a null


def _serialize_timestamp(value, protocol_version: int) -> bytes:
    """A ``timestamp`` as the driver writes it (naive datetimes are UTC), without timegm."""
    if type(value) is datetime.datetime and not value.microsecond % 1000:
        # Whole milliseconds (what Cassandra returns): exact in integers.
        epoch = _EPOCH if value.tzinfo is None else _EPOCH_UTC
        return int64_pack((value - epoch) // _MILLISECOND)
    if type(value) is int:  # milliseconds: a timestamp past what a datetime holds (values)
        return int64_pack(value)
    return cqltypes.DateType.serialize(value, protocol_version)


def _serializer(cql_type):
    if cql_type is cqltypes.DateType or cql_type is Timestamp:
        return _serialize_timestamp
    return cql_type.serialize


class Binder:
    """``bind(values)`` for one prepared statement; ``values`` in its bind marker order, None
    for null, UNSET_VALUE for a column to leave untouched, the driver's EMPTY for an empty
    value (written as no bytes; the driver's own ``bind`` cannot write it)."""

    __slots__ = ("_prepared", "_serializers", "_protocol_version", "_key_indexes")

    def __init__(self, prepared):
        self._prepared = prepared
        self._protocol_version = prepared.protocol_version
        self._key_indexes = tuple(prepared.routing_key_indexes or ())
        self._serializers = None
        if prepared.column_encryption_policy is None and self._protocol_version >= 4:
            self._serializers = tuple(_serializer(column.type)
                                      for column in prepared.column_metadata)

    @property
    def prepared(self):
        return self._prepared

    def bind(self, values: Sequence) -> BoundStatement:
        serializers = self._serializers
        if serializers is None or len(values) != len(serializers):
            return self._prepared.bind(values)
        protocol_version = self._protocol_version
        try:
            serialized = [value if value is None or value is UNSET_VALUE
                          else _NO_BYTES if value is EMPTY
                          else serialize(value, protocol_version)
                          for value, serialize in zip(values, serializers, strict=True)]
        except Exception:  # noqa: BLE001 - the driver's bind raises its own, clearer error
            return self._prepared.bind(values)
        for index in self._key_indexes:
            if serialized[index] is UNSET_VALUE:
                return self._prepared.bind(values)  # raises: a key column cannot be UNSET
        bound = BoundStatement(self._prepared)
        bound.raw_values = values
        bound.values = serialized
        return bound

    def bind_serialized(self, values: Sequence) -> BoundStatement:
        """Bind values that are serialized already (bytes; UNSET_VALUE to leave a column
        untouched), as a copy between columns of the same types reads them."""
        columns = self._prepared.column_metadata
        if len(values) != len(columns):
            raise ValueError(f"{len(values)} values for {len(columns)} columns")
        for index in self._key_indexes:
            if values[index] is UNSET_VALUE or values[index] is None:
                raise ValueError(f"key column {columns[index].name} is null")
        bound = BoundStatement(self._prepared)
        bound.raw_values = values
        bound.values = values
        return bound
