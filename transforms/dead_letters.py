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
import itertools
import json
import os
import threading
import uuid
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from cassandra.cqltypes import EMPTY
from cassandra.util import Date, Duration, Time

from transforms.cells import TTL_PREFIX, WRITETIME_PREFIX, data_of
from transforms.cql import literal_insert
from transforms.process_cache import PerProcess

__all__ = ["DurableJsonLines", "WriteJsonLines", "durable_file", "failed_row_record", "to_json"]


def to_json(value):
    """A JSON-ready form of a driver value (blobs as base64 text, sets and tuples as lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if value is EMPTY:  # an empty value (no bytes), not a null
        return ""
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
        if any(ttl for _, _, ttl in groups):
            # Expiring cells: a replay takes the time since ``failed_at`` off their TTLs
            # (and leaves out those expired on the source meanwhile), so it needs them apart.
            record["statements"] = [
                {"cql": literal_insert(keyspace, table, cells), "timestamp": writetime,
                 "ttl": ttl} for cells, writetime, ttl in groups]
        record["writetime"] = {name: to_json(value) for name, value in row.items()
                               if name.startswith(WRITETIME_PREFIX)}
        record["ttl"] = {name: to_json(value) for name, value in row.items()
                         if name.startswith(TTL_PREFIX)}
    else:
        record["cql"] = literal_insert(keyspace, table, data)
    if any(value is EMPTY for value in data.values()):
        # CQL has no literal of an empty int or timestamp that does not name its type: the
        # record is kept, and replay reports it instead of writing a null.
        record["cql"] = None
        record["empty_columns"] = sorted(name for name, value in data.items() if value is EMPTY)
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


class DurableJsonLines:
    """One process's JSON Lines file of one kind (``failed_rows``, ``differences``) for one
    table, shared by its threads: ``<prefix>.<kind>.<random>.jsonl``, each append flushed and
    fsynced before it returns, so what a worker counts is on disk even if it is killed next."""

    def __init__(self, prefix: str, kind: str):
        self._remote = "://" in prefix
        # Not the process id: SDK processes in containers on different VMs share their pids.
        self._path = f"{prefix}.{kind}.{uuid.uuid4().hex[:12]}.jsonl"
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._handle = None

    def append(self, records: list[dict]) -> str:
        """Write the records durably; return the file's path."""
        lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        with self._lock:
            if self._remote:  # objects cannot be appended to: one object per flush
                path = f"{self._path[:-len('.jsonl')]}-{next(self._sequence)}.jsonl"
                with FileSystems.create(path) as handle:
                    handle.write(lines.encode("utf-8"))
                return path
            if self._handle is None:
                os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
                self._handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
            self._handle.write(lines)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            return self._path


_FILES: PerProcess[DurableJsonLines] = PerProcess(DurableJsonLines)


def durable_file(prefix: str, kind: str) -> DurableJsonLines:
    """This process's file of ``kind`` records for the table at ``prefix``."""
    return _FILES.get((prefix, kind), prefix, kind)
