"""Dead letters: the rows (and token ranges) that could not be moved, as durable JSON Lines.

A failed row is data, not only a log line: its record names the table, the primary key, the
error and the number of attempts, and carries the full row twice: as JSON for people and tools,
and as a CQL INSERT with literal values that can be replayed as it is (cqlsh -f).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import ipaddress
import json
import uuid
from collections.abc import Mapping

import apache_beam as beam
from cassandra.util import Date, Duration, Time

from transforms.cells import TTL_PREFIX, WRITETIME_PREFIX, data_of
from transforms.cql import literal_insert

__all__ = ["WriteJsonLines", "failed_row_record", "to_json"]


def to_json(value):
    """A JSON-ready form of a driver value (blobs as base64 text, sets and tuples as lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (uuid.UUID, decimal.Decimal, ipaddress._BaseAddress, Date, Time)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Duration):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return {key: to_json(item) for key, item in value.items()}
        return [[to_json(key), to_json(item)] for key, item in value.items()]
    if hasattr(value, "_fields"):  # user-defined types and named tuples
        return {field: to_json(getattr(value, field)) for field in value._fields}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(item) for item in value]
    return repr(value)


def failed_row_record(keyspace: str, table: str, key: Mapping, row: Mapping, outcome,
                      groups: list | None = None) -> dict:
    """The dead letter of a row. ``groups`` are its cell groups (``cells.cell_groups``) when
    writetimes and TTLs are kept: the replayable CQL then keeps them too."""
    data = data_of(row)
    record = {
        "table": f"{keyspace}.{table}",
        **key,
        "error": type(outcome.error).__name__,
        "message": str(outcome.error),
        "attempts": outcome.attempts,
        "row": {name: to_json(value) for name, value in data.items()},
        "failed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if groups:
        record["cql"] = " ".join(literal_insert(keyspace, table, cells, writetime, ttl)
                                 for cells, writetime, ttl in groups)
        record["writetime"] = {name: to_json(value) for name, value in row.items()
                               if name.startswith(WRITETIME_PREFIX)}
        record["ttl"] = {name: to_json(value) for name, value in row.items()
                         if name.startswith(TTL_PREFIX)}
    else:
        record["cql"] = literal_insert(keyspace, table, data)
    return record


class WriteJsonLines(beam.PTransform):
    """Write dicts as one JSON Lines file at ``path`` (any Beam filesystem: local, gs://, ...).

    One shard, so one file a person can open; dead letters are few, so one writer is enough.
    The file is always written, empty when nothing failed, so its presence proves the run looked.
    """

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, records):
        return (records
                | "ToJson" >> beam.Map(lambda record: json.dumps(record, sort_keys=True))
                | "WriteFile" >> beam.io.WriteToText(self._path, num_shards=1,
                                                     shard_name_template=""))
