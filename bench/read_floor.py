"""The read floor: the least work a copier must spend reading the source, by a plain driver program.

It reads what the pipeline must read to keep writetimes and TTLs (every column, and
``writetime(c)`` and ``ttl(c)`` of each regular column) with the same fetch size, and throws
the rows away. The ring is cut into ``--ranges`` token ranges, ``--concurrency`` of them paged
at once with the driver's asynchronous paging (``start_fetching_next_page`` from a callback),
rows as plain tuples (the cheapest row factory).

    python -m bench.read_floor --host 127.0.0.1 --keyspace ks --table events \
        --fetch-size 100 --result result.json

The result file holds the seconds of the reading, the rows read, and ``cpu_seconds_timed``, this
process's CPU time while reading. ``bench.run`` adds the CPU seconds of this program and of the
write ceiling (client and Cassandra) to bound what any copier could reach on the machine.
"""

from __future__ import annotations

import argparse
import threading
import time

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import tuple_factory

from bench.cluster import HIGHEST_TOKEN, LOWEST_TOKEN, connect, write_result

RANGES = 64
CONCURRENCY = 8
FETCH_SIZE = 100


def selectors(table) -> list[str]:
    keys = {column.name for column in (*table.partition_key, *table.clustering_key)}
    chosen = [f'"{name}"' for name in table.columns]
    for name, column in table.columns.items():
        if name not in keys and column.cql_type != "counter":
            chosen += [f'writetime("{name}")', f'ttl("{name}")']
    return chosen


class _Pager:
    """Pages through token ranges, ``concurrency`` at once, counting rows."""

    def __init__(self, session, statement, ranges: list[tuple[int, int]], concurrency: int):
        self._session = session
        self._statement = statement
        self._ranges = iter(ranges)
        self._lock = threading.Lock()
        self._running = 0
        self._done = threading.Event()
        self.rows = 0
        self.error: BaseException | None = None
        for _ in range(concurrency):
            self._start_next()

    def _start_next(self) -> None:
        with self._lock:
            bounds = next(self._ranges, None)
            if bounds is None:
                if self._running == 0:
                    self._done.set()
                return
            self._running += 1
        future = self._session.execute_async(self._statement.bind(bounds))
        future.add_callbacks(self._page, self._failed, callback_args=(future,))

    def _page(self, rows, future) -> None:
        with self._lock:
            self.rows += len(rows)
        if future.has_more_pages:
            future.start_fetching_next_page()
            return
        with self._lock:
            self._running -= 1
        self._start_next()

    def _failed(self, error: BaseException) -> None:
        self.error = error
        self._done.set()

    def wait(self) -> int:
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.rows


def token_ranges(count: int) -> list[tuple[int, int]]:
    width = HIGHEST_TOKEN - LOWEST_TOKEN
    bounds = [LOWEST_TOKEN + width * index // count for index in range(count + 1)]
    return list(zip(bounds, bounds[1:], strict=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--fetch-size", type=int, default=FETCH_SIZE)
    parser.add_argument("--ranges", type=int, default=RANGES)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)

    session = connect(args.host)
    session.get_execution_profile(EXEC_PROFILE_DEFAULT).row_factory = tuple_factory
    table = session.cluster.metadata.keyspaces[args.keyspace].tables[args.table]
    key = ", ".join(f'"{column.name}"' for column in table.partition_key)
    statement = session.prepare(
        f'SELECT {", ".join(selectors(table))} FROM "{args.keyspace}"."{args.table}" '
        f"WHERE token({key}) > ? AND token({key}) <= ?")
    statement.fetch_size = args.fetch_size
    cpu_started, started = time.process_time(), time.perf_counter()
    rows = _Pager(session, statement, token_ranges(args.ranges), args.concurrency).wait()
    seconds = time.perf_counter() - started
    write_result(args.result, seconds=seconds, rows_read=rows,
                 cpu_seconds_timed=round(time.process_time() - cpu_started, 3),
                 fetch_size=args.fetch_size, ranges=args.ranges, concurrency=args.concurrency)
    session.cluster.shutdown()


if __name__ == "__main__":
    main()
