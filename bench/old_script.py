"""The old migration script's approach, re-created as the baseline the pipeline must beat.

What it did, and what this does on purpose (its flaws are the point of the comparison):
  * list the partition keys of the source table (``SELECT DISTINCT``);
  * a ``ThreadPoolExecutor`` of MAX_WORKERS (5) threads, one task per partition, each reading
    its partition with a fetch size of 100;
  * rows go into one shared buffer; whoever fills it to 50 rows writes them as one
    ``BatchStatement`` -- LOGGED, the driver's default -- spanning whatever partitions they came
    from, synchronously (``session.execute``), then goes back to reading;
  * nulls are bound as null (tombstones on the target), the driver's default consistency
    (LOCAL_ONE) and default policies; the first error stops the copy.

    python -m bench.old_script --source-host 127.0.0.1 --target-host 127.0.0.2 \
        --keyspace ks --table events --result result.json

The result file holds the seconds from listing the partitions to the last batch written (the
connections are made before) and the rows written.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from cassandra.cluster import Cluster
from cassandra.query import BatchStatement, SimpleStatement

from bench.cluster import write_result

MAX_WORKERS = 5
FETCH_SIZE = 100
BATCH_SIZE = 50


class _SharedBatch:
    """Rows waiting to be written; every ``size`` rows become one batch, written synchronously."""

    def __init__(self, session, insert, size: int):
        self._session = session
        self._insert = insert
        self._size = size
        self._lock = threading.Lock()
        self._rows: list[tuple] = []
        self.written = 0

    def add(self, row: tuple) -> None:
        with self._lock:
            self._rows.append(row)
            if len(self._rows) < self._size:
                return
            rows, self._rows = self._rows, []
        self._write(rows)

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            self._write(rows)

    def _write(self, rows: list[tuple]) -> None:
        batch = BatchStatement()  # BatchType.LOGGED, as the old script left it
        for row in rows:
            batch.add(self._insert, row)
        self._session.execute(batch)
        with self._lock:
            self.written += len(rows)


def copy_table(source, target, keyspace: str, table: str, target_keyspace: str,
               workers: int = MAX_WORKERS, fetch_size: int = FETCH_SIZE,
               batch_size: int = BATCH_SIZE) -> int:
    """Copy every row of ``keyspace.table`` to ``target_keyspace.table``; return rows written."""
    metadata = source.cluster.metadata.keyspaces[keyspace].tables[table]
    partition_key = [column.name for column in metadata.partition_key]
    columns = list(metadata.columns)
    keys = list(source.execute(SimpleStatement(
        f"SELECT DISTINCT {', '.join(partition_key)} FROM {keyspace}.{table}",
        fetch_size=5000)))
    select = source.prepare(f"SELECT {', '.join(columns)} FROM {keyspace}.{table} WHERE "
                            + " AND ".join(f"{name} = ?" for name in partition_key))
    select.fetch_size = fetch_size
    insert = target.prepare(f"INSERT INTO {target_keyspace}.{table} ({', '.join(columns)}) "
                            f"VALUES ({', '.join('?' for _ in columns)})")
    batch = _SharedBatch(target, insert, batch_size)

    def copy_partition(key) -> None:
        for row in source.execute(select, tuple(key)):
            batch.add(tuple(row))

    with ThreadPoolExecutor(max_workers=workers) as executor:
        list(executor.map(copy_partition, keys))
    batch.flush()
    return batch.written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-host", required=True)
    parser.add_argument("--target-host", required=True)
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--target-keyspace", help="default: the source keyspace")
    parser.add_argument("--table", required=True)
    parser.add_argument("--workers", type=int, default=MAX_WORKERS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="rows per batch; 50 exceeds Cassandra's 50 KiB batch limit "
                             "with rows of 1 KB")
    parser.add_argument("--result", required=True, help="JSON file to write the figures to")
    args = parser.parse_args(argv)
    source_cluster, target_cluster = Cluster([args.source_host]), Cluster([args.target_host])
    source, target = source_cluster.connect(), target_cluster.connect()
    started = time.perf_counter()
    written = copy_table(source, target, args.keyspace, args.table,
                         args.target_keyspace or args.keyspace, workers=args.workers,
                         batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    write_result(args.result, seconds=seconds, rows_written=written, workers=args.workers,
                 batch_size=args.batch_size)
    source_cluster.shutdown()
    target_cluster.shutdown()


if __name__ == "__main__":
    main()
