"""The write ceiling: how fast a plain driver program writes the rows, already in memory.

The rows are the bench table's own (``tools.sample_data.generate_rows`` with the same seed makes
the same rows the source holds), loaded into a list before the clock starts, with nulls turned
into UNSET as the pipeline does. Only the writing is timed, by one of three methods:

  * ``prepared``: one prepared INSERT per row, ``execute_async`` with at most ``concurrency``
    requests in flight (a semaphore released by the callbacks);
  * ``concurrent``: the driver's ``execute_concurrent_with_args``;
  * ``batches``: rows grouped by replica set into UNLOGGED batches of at most ``batch_rows``
    rows and ``batch_bytes`` bytes (Cassandra refuses a multi-partition batch over 50 KiB),
    sent with ``execute_concurrent``.

    python -m bench.write_ceiling --host 127.0.0.2 --keyspace ks --table events \
        --rows 100000 --shape narrow --method batches --result result.json
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterator

from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from bench.cluster import connect, write_result
from tools.sample_data import COLUMNS, SHAPES, generate_rows

METHODS = ("prepared", "concurrent", "batches")
CONCURRENCY = 128
BATCH_ROWS = 50
BATCH_BYTES = 40_000
PROTOCOL_VERSION = 0


def load_rows(rows: int, shape: str) -> list[tuple]:
    """The table's rows, in memory, with UNSET for null (no tombstones, like the pipeline)."""
    return [tuple(UNSET_VALUE if value is None else value for value in row)
            for row in generate_rows(rows, shape)]


def write_prepared(session, insert, rows: list[tuple], concurrency: int) -> None:
    """One request per row, at most ``concurrency`` in flight."""
    slots = threading.Semaphore(concurrency)
    errors: list[BaseException] = []

    def done(_result) -> None:
        slots.release()

    def failed(error: BaseException) -> None:
        errors.append(error)
        slots.release()

    for row in rows:
        slots.acquire()
        if errors:
            slots.release()
            break
        session.execute_async(insert.bind(row)).add_callbacks(done, failed)
    for _ in range(concurrency):
        slots.acquire()
    if errors:
        raise errors[0]


def write_concurrent(session, insert, rows: list[tuple], concurrency: int) -> None:
    """The driver's own helper, results streamed rather than collected."""
    for _ in execute_concurrent_with_args(session, insert, rows, concurrency=concurrency,
                                          raise_on_first_error=True, results_generator=True):
        pass


def _row_bytes(row: tuple) -> int:
    return sum(len(value) if isinstance(value, (bytes, str)) else
               16 if isinstance(value, uuid.UUID) else 8 for value in row)


def replica_batches(session, keyspace: str, insert, rows: list[tuple], batch_rows: int,
                    batch_bytes: int) -> Iterator[tuple[BatchStatement, None]]:
    """UNLOGGED batches of rows that share a replica set, as (statement, parameters) pairs."""
    token_map = session.cluster.metadata.token_map
    groups: dict[frozenset, tuple[BatchStatement, list[int]]] = {}
    for row in rows:
        bound = insert.bind(row)
        token = token_map.token_class.from_key(bound.routing_key)
        replicas = frozenset(token_map.get_replicas(keyspace, token))
        batch, size = groups.get(replicas, (None, [0]))
        row_bytes = _row_bytes(row)
        if batch is not None and (len(batch) >= batch_rows or size[0] + row_bytes > batch_bytes):
            yield batch, None
            batch = None
        if batch is None:
            batch, size = BatchStatement(batch_type=BatchType.UNLOGGED,
                                         consistency_level=insert.consistency_level), [0]
            groups[replicas] = (batch, size)
        batch.add(bound)
        size[0] += row_bytes
    for batch, _ in groups.values():
        if len(batch):
            yield batch, None


def write_batches(session, keyspace: str, insert, rows: list[tuple], concurrency: int,
                  batch_rows: int, batch_bytes: int) -> None:
    batches = replica_batches(session, keyspace, insert, rows, batch_rows, batch_bytes)
    for _ in execute_concurrent(session, batches, concurrency=concurrency,
                                raise_on_first_error=True, results_generator=True):
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="the target cluster")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--shape", choices=SHAPES, required=True)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--batch-bytes", type=int, default=BATCH_BYTES)
    parser.add_argument("--protocol-version", type=int, default=PROTOCOL_VERSION,
                        help="native protocol version; 0 lets the driver negotiate (v5)")
    parser.add_argument("--result", required=True, help="JSON file to write the figures to")
    args = parser.parse_args(argv)
    rows = load_rows(args.rows, args.shape)
    # The pipeline's write level; on these single-replica keyspaces it costs what ONE costs.
    session = connect(args.host, consistency=ConsistencyLevel.QUORUM,
                      protocol_version=args.protocol_version or None)
    insert = session.prepare(f"INSERT INTO {args.keyspace}.{args.table} ({', '.join(COLUMNS)}) "
                             f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    insert.consistency_level = ConsistencyLevel.QUORUM
    started = time.perf_counter()
    if args.method == "prepared":
        write_prepared(session, insert, rows, args.concurrency)
    elif args.method == "concurrent":
        write_concurrent(session, insert, rows, args.concurrency)
    else:
        write_batches(session, args.keyspace, insert, rows, args.concurrency, args.batch_rows,
                      args.batch_bytes)
    seconds = time.perf_counter() - started
    write_result(args.result, seconds=seconds, rows_written=len(rows), method=args.method,
                 concurrency=args.concurrency, protocol_version=session.cluster.protocol_version,
                 **({"batch_rows": args.batch_rows, "batch_bytes": args.batch_bytes}
                    if args.method == "batches" else {}))
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
