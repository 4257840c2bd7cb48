"""Driver values that can travel through a Beam pipeline, and be written back as CQL literals.

The driver returns a user-defined type as an instance of a namedtuple class it makes at run time;
such a class cannot be pickled, and Beam pickles elements (to estimate their size, or to move
them between workers). ``register_user_types`` makes the driver build ``UdtValue`` instances
instead: tuples (so the driver can serialize them again, field by field, by position) that also
answer by field name and pickle by value.

An empty value (no bytes: what ``blobAsInt(0x)`` writes) is not a null in Cassandra, but the
driver decodes an empty int, bigint, timestamp, uuid, boolean, decimal, inet, ... as None,
which the writer sends as UNSET: a copy would lose it, and a comparison would call the two
equal. Importing this module makes the driver return its ``EMPTY`` singleton instead (both its
Python and its Cython decoders ask ``support_empty_values``), which ``binding.Binder`` writes
back as no bytes; ``EMPTY`` pickles to the singleton, so it stays itself across a shuffle. It
is process-wide: every session of a process that imports the connector decodes the same way.

So is the decoding of a ``timestamp`` (``Timestamp``): a datetime where Python's can hold it
(years 1 to 9999), else its milliseconds since the epoch as an int, which the writer writes back
as the same value (a CQL literal too). The driver's own decoder raises on such a value, and the
error fails the whole page and closes the connection it came on.
"""

from __future__ import annotations

import copyreg

from cassandra import cqltypes, type_codes, util
from cassandra.cqltypes import EMPTY, EmptyValue
from cassandra.encoder import Encoder
from cassandra.marshal import int64_unpack
from cassandra.protocol import ResultMessage
from cassandra.util import Duration

_CLASSES: dict[tuple[str, tuple[str, ...]], type] = {}

cqltypes._CassandraType.support_empty_values = True


def empty_value() -> EmptyValue:
    """The driver's EMPTY (what an unpickled empty value becomes)."""
    return EMPTY


copyreg.pickle(EmptyValue, lambda value: (empty_value, ()))


class _Timestamp(cqltypes.DateType):
    """``timestamp`` as the driver decodes it, except a value outside Python's datetime range:
    its milliseconds since the epoch (an int). Its name starts with "_" so the driver does not
    register it as the type of "timestamp"; the Cython row parser decodes it through this
    ``deserialize``."""

    cassname = cqltypes.DateType.cassname

    @staticmethod
    def deserialize(byts, protocol_version):
        millis = int64_unpack(byts)
        try:
            return util.datetime_from_timestamp(millis / 1000.0)
        except (OverflowError, ValueError):
            return millis


#: The class of ``timestamp`` values in result metadata (also of a prepared statement's
#: columns, which ``binding.Binder`` serializes).
Timestamp = _Timestamp
ResultMessage.type_codes[type_codes.DateType] = _Timestamp


class UdtValue(tuple):
    """A value of a user-defined type: its fields in declaration order."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _type_name = ""

    def __new__(cls, *values, **by_name):
        if by_name:
            values = tuple(by_name.get(field) for field in cls._fields)
        return tuple.__new__(cls, values)

    def __getattr__(self, name):
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __reduce__(self):
        return _rebuild, (self._type_name, self._fields, tuple(self))

    def __repr__(self):
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self,
                                                                         strict=False))
        return f"{self._type_name}({fields})"


def udt_class(type_name: str, fields: tuple[str, ...]) -> type:
    key = (type_name, tuple(fields))
    cls = _CLASSES.get(key)
    if cls is None:
        cls = type(type_name, (UdtValue,), {"__slots__": (), "_fields": tuple(fields),
                                            "_type_name": type_name})
        _CLASSES[key] = cls
    return cls


def _rebuild(type_name: str, fields: tuple[str, ...], values: tuple) -> UdtValue:
    return udt_class(type_name, fields)(*values)


def register_user_types(cluster, keyspace: str) -> None:
    """Have the driver return UdtValue for every user type of ``keyspace``."""
    for name, user_type in cluster.metadata.keyspaces[keyspace].user_types.items():
        cluster.register_user_type(keyspace, name, udt_class(name, tuple(user_type.field_names)))


def forget_dropped_user_types(cluster) -> None:
    """Drop the registrations of user types whose keyspace or type is gone. The driver hands
    every registration to each new session of the cluster and fails ``connect()`` for one it
    cannot find: a process that lives on (a Flink or Dataflow worker, a test run) and shares
    its Cluster across jobs could not open a session after a keyspace of an earlier job was
    dropped."""
    registered = cluster._user_types  # noqa: SLF001 - the driver offers no way to unregister
    keyspaces = cluster.metadata.keyspaces
    for keyspace in list(registered):
        found = keyspaces.get(keyspace)
        for name in list(registered[keyspace]):
            if found is None or name not in found.user_types:
                del registered[keyspace][name]
        if not registered[keyspace]:
            del registered[keyspace]


class LiteralEncoder(Encoder):
    """The driver's CQL literal encoder, plus user types ({field: value}) and durations."""

    def cql_encode_all_types(self, val, as_text_type=False):
        if isinstance(val, UdtValue) or (isinstance(val, tuple) and hasattr(val, "_fields")):
            fields = ", ".join(f"{name}: {self.cql_encode_all_types(item)}"
                               for name, item in zip(val._fields, val, strict=False)
                               if item is not None)
            return "{" + fields + "}"
        if isinstance(val, Duration):
            return f"{val.months}mo{val.days}d{val.nanoseconds}ns"
        if isinstance(val, (list, set, frozenset)) or hasattr(val, "items"):
            return self._encode_collection(val)
        return super().cql_encode_all_types(val, as_text_type)

    def _encode_collection(self, val):
        if hasattr(val, "items"):
            return "{" + ", ".join(f"{self.cql_encode_all_types(key)}: "
                                   f"{self.cql_encode_all_types(item)}"
                                   for key, item in val.items()) + "}"
        items = ", ".join(self.cql_encode_all_types(item) for item in val)
        return f"[{items}]" if isinstance(val, list) else "{" + items + "}"
