"""The write ceiling: how fast a plain driver program writes the rows, already in memory.

The rows are the bench table's own (``tools.sample_data.generate_rows`` with the same seed makes
the same rows the source holds), loaded into a list before the clock starts, with nulls turned
into UNSET as the pipeline does. Only the writing is timed, by one of three methods:

  * ``prepared``: one prepared INSERT per row, ``execute_async`` with at most ``concurrency``
    requests in flight (a semaphore released by the callbacks);
  * ``concurrent``: the driver's ``execute_concurrent_with_args``;
  * ``batches``: rows grouped by replica set into UNLOGGED batches of at most ``batch_rows``
    rows and ``batch_bytes`` bytes (Cassandra refuses a multi-partition batch over 50 KiB),
    sent like ``prepared``.
``prepared`` and ``batches`` send a request again when the driver refuses it as busy (Cassandra
5 stops reading a connection that has too many bytes in flight); the count is reported.

    python -m bench.write_ceiling --host 127.0.0.2 --keyspace ks --table events \
        --rows 100000 --shape narrow --method batches --result result.json
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
import uuid
from collections.abc import Iterable, Iterator

from cassandra import ConsistencyLevel
from cassandra.cluster import NoHostAvailable
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.connection import ConnectionBusy
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from bench.cluster import connect, write_result
from tools.sample_data import COLUMNS, SHAPES, generate_rows

METHODS = ("prepared", "concurrent", "batches")
CONCURRENCY = 128
BATCH_ROWS = 50
BATCH_BYTES = 40_000
PROTOCOL_VERSION = 0
BUSY_PAUSE_SECONDS = 0.005


def load_rows(rows: int, shape: str) -> list[tuple]:
    """The table's rows, in memory, with UNSET for null (no tombstones, like the pipeline)."""
    return [tuple(UNSET_VALUE if value is None else value for value in row)
            for row in generate_rows(rows, shape)]


def _is_busy(error: BaseException) -> bool:
    """The driver refused to send because the server stopped reading (it is busy): retry."""
    if isinstance(error, NoHostAvailable) and error.errors:
        return all(isinstance(cause, ConnectionBusy) for cause in error.errors.values())
    return isinstance(error, ConnectionBusy)


def write_windowed(session, statements: Iterable, concurrency: int) -> int:
    """Send ``statements`` with at most ``concurrency`` in flight; return how many were resent.

    A statement refused as busy (Cassandra 5 pushes back when too many bytes are in flight)
    is sent again after a short pause; any other error stops the writing and is raised.
    """
    slots = threading.Semaphore(concurrency)
    busy: collections.deque = collections.deque()
    errors: list[BaseException] = []

    def failed(error: BaseException, statement) -> None:
        if _is_busy(error):
            busy.append(statement)
        else:
            errors.append(error)
        slots.release()

    def wait_for_all() -> None:
        for _ in range(concurrency):
            slots.acquire()
        for _ in range(concurrency):
            slots.release()

    pending, resent = iter(statements), 0
    while not errors:
        slots.acquire()
        if busy:
            time.sleep(BUSY_PAUSE_SECONDS)
            statement, resent = busy.popleft(), resent + 1
        else:
            statement = next(pending, None)
            if statement is None:
                slots.release()
                wait_for_all()
                if busy:
                    continue
                break
        future = session.execute_async(statement)
        future.add_callbacks(lambda _result: slots.release(), failed, errback_args=(statement,))
    wait_for_all()
    if errors:
        raise errors[0]
    return resent


def write_prepared(session, insert, rows: list[tuple], concurrency: int) -> int:
    """One request per row, at most ``concurrency`` in flight."""
    return write_windowed(session, (insert.bind(row) for row in rows), concurrency)


def write_concurrent(session, insert, rows: list[tuple], concurrency: int) -> int:
    """The driver's own helper, results streamed rather than collected (it resends nothing)."""
    for _ in execute_concurrent_with_args(session, insert, rows, concurrency=concurrency,
                                          raise_on_first_error=True, results_generator=True):
        pass
    return 0


def _row_bytes(row: tuple) -> int:
    return sum(len(value) if isinstance(value, (bytes, str)) else
               16 if isinstance(value, uuid.UUID) else 8 for value in row)


def replica_batches(session, keyspace: str, insert, rows: list[tuple], batch_rows: int,
                    batch_bytes: int) -> Iterator[BatchStatement]:
    """UNLOGGED batches of rows that share a replica set."""
    token_map = session.cluster.metadata.token_map
    groups: dict[frozenset, tuple[BatchStatement, list[int]]] = {}
    for row in rows:
        bound = insert.bind(row)
        token = token_map.token_class.from_key(bound.routing_key)
        replicas = frozenset(token_map.get_replicas(keyspace, token))
        batch, size = groups.get(replicas, (None, [0]))
        row_bytes = _row_bytes(row)
        if batch is not None and (len(batch) >= batch_rows or size[0] + row_bytes > batch_bytes):
            yield batch
            batch = None
        if batch is None:
            batch, size = BatchStatement(batch_type=BatchType.UNLOGGED,
                                         consistency_level=insert.consistency_level), [0]
            groups[replicas] = (batch, size)
        batch.add(bound)
        size[0] += row_bytes
    for batch, _ in groups.values():
        if len(batch):
            yield batch


def write_batches(session, keyspace: str, insert, rows: list[tuple], concurrency: int,
                  batch_rows: int, batch_bytes: int) -> int:
    """Replica-set batches, at most ``concurrency`` in flight; return how many were resent."""
    return write_windowed(session, replica_batches(session, keyspace, insert, rows, batch_rows,
                                                   batch_bytes), concurrency)


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
    cpu_started, started = time.process_time(), time.perf_counter()
    if args.method == "prepared":
        resent = write_prepared(session, insert, rows, args.concurrency)
    elif args.method == "concurrent":
        resent = write_concurrent(session, insert, rows, args.concurrency)
    else:
        resent = write_batches(session, args.keyspace, insert, rows, args.concurrency,
                               args.batch_rows, args.batch_bytes)
    seconds = time.perf_counter() - started
    write_result(args.result, seconds=seconds, rows_written=len(rows), method=args.method,
                 cpu_seconds_timed=round(time.process_time() - cpu_started, 3),
                 concurrency=args.concurrency, resent_when_busy=resent,
                 protocol_version=session.cluster.protocol_version,
                 **({"batch_rows": args.batch_rows, "batch_bytes": args.batch_bytes}
                    if args.method == "batches" else {}))
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
